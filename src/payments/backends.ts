/**
 * Builds the verifier, settler and proof checker of each configured network from its config:
 * local viem checks (behind the cache) or a facilitator list, a local key or a facilitator to
 * settle. One chain client per network, one HTTP pool for all facilitators.
 */
import type { Config, NetworkConfig } from '../config/types.js';
import { CachedVerifier, type CachedVerifierCounters } from './cached-verifier.js';
import { createChainClient, type ChainClient } from './chain-client.js';
import { LocalExactEvmSettler } from './exact-evm/settle.js';
import { LocalExactEvmVerifier } from './exact-evm/verify.js';
import { createFacilitatorDispatcher, FacilitatorClient } from './facilitator-client.js';
import { expectedFacilitatorKinds } from './facilitator-request.js';
import { FacilitatorSettler } from './facilitator-settler.js';
import type { FacilitatorSupportReport } from './facilitator-support.js';
import { FacilitatorVerifier } from './facilitator-verifier.js';
import type { Clock, ProofChecker, Settler, Verifier } from './ports.js';
import { TxProofChecker } from './tx-proof.js';

export interface PaymentBackends {
  /** Keyed by network name, like everything below. */
  readonly verifiers: ReadonlyMap<string, Verifier>;
  readonly settlers: ReadonlyMap<string, Settler>;
  readonly proofs: ReadonlyMap<string, ProofChecker>;
  /** Verification-cache counters of each locally verified network. */
  readonly cacheCounters: ReadonlyMap<string, CachedVerifierCounters>;
  /** Asks each facilitator whether it supports the networks it serves; for the start-up log. */
  checkFacilitators(): Promise<{ network: string; reports: FacilitatorSupportReport[] }[]>;
  close(): Promise<void>;
}

export function createPaymentBackends(config: Config, clock: Clock): PaymentBackends {
  const verifiers = new Map<string, Verifier>();
  const settlers = new Map<string, Settler>();
  const proofs = new Map<string, ProofChecker>();
  const cacheCounters = new Map<string, CachedVerifierCounters>();
  const facilitatorVerifiers: { network: NetworkConfig; verifier: FacilitatorVerifier }[] = [];
  const dispatcher = createFacilitatorDispatcher();

  for (const network of config.networks.values()) {
    const client: ChainClient | undefined = network.rpc.length > 0 ? createChainClient(network) : undefined;
    const facilitators =
      network.settle.mode === 'facilitator' ? network.settle.facilitators.map((f) => new FacilitatorClient(f, { dispatcher })) : [];

    if (network.verify === 'local' && client) {
      const cached = new CachedVerifier(new LocalExactEvmVerifier({ clock, client }), { clock });
      verifiers.set(network.name, cached);
      cacheCounters.set(network.name, cached.counters);
    } else if (facilitators.length > 0) {
      const verifier = new FacilitatorVerifier(facilitators);
      verifiers.set(network.name, verifier);
      facilitatorVerifiers.push({ network, verifier });
    }

    if (network.settle.mode === 'local' && client) {
      settlers.set(
        network.name,
        new LocalExactEvmSettler({ network, client, privateKey: network.settle.privateKey, clock, receiptTimeoutMs: network.settle.receiptTimeoutMs }),
      );
    } else if (facilitators.length > 0) {
      settlers.set(network.name, new FacilitatorSettler(facilitators));
    }

    if (client) proofs.set(network.name, new TxProofChecker({ client, clock }));
  }

  return {
    verifiers,
    settlers,
    proofs,
    cacheCounters,
    checkFacilitators: () =>
      Promise.all(facilitatorVerifiers.map(async ({ network, verifier }) => ({ network: network.name, reports: await verifier.startupCheck(expectedFacilitatorKinds(network)) }))),
    close: () => dispatcher.close(),
  };
}
