/**
 * Chooses and builds the verifier, settler and proof checker of each configured network.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Clock, ProofChecker, Settler, Verifier } from './ports.js';

export interface PaymentBackends {
  readonly verifiers: ReadonlyMap<string, Verifier>;
  readonly settlers: ReadonlyMap<string, Settler>;
  readonly proofs: ReadonlyMap<string, ProofChecker>;
}

export function createPaymentBackends(_config: Config, _clock: Clock, _logger: Logger): PaymentBackends {
  return { verifiers: new Map(), settlers: new Map(), proofs: new Map() };
}
