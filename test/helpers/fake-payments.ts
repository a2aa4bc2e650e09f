/**
 * Scripted, recording payment backends for the fast tier: a Verifier and a Settler that answer
 * what the test says and record every call, behind the same `PaymentBackendSource` seam the real
 * adapters use (`runGateway({ backends })`). They stand in for the chain only; the HTTP layer, the
 * ledger and the upstream under test are real. What proves money moves stays on anvil (test/e2e).
 */
import { randomBytes } from 'node:crypto';
import type { PaymentBackendSource } from '../../src/payment-backends.js';
import type { PaymentOption } from '../../src/config/types.js';
import type { SettleResult, VerifyResult } from '../../src/payments/ports.js';
import type { DecodedPayment, Hex } from '../../src/protocol/types.js';

export interface FakePayments {
  readonly backends: PaymentBackendSource;
  /** What the next verifications answer; valid (as the payload's `from`) by default. */
  verifyAnswer: ((payment: DecodedPayment) => VerifyResult) | undefined;
  /** What the next settlements answer, after `settleDelayMs`; success by default. */
  settleAnswer: ((payment: DecodedPayment) => SettleResult) | undefined;
  settleDelayMs: number;
  readonly verified: DecodedPayment[];
  readonly settled: DecodedPayment[];
}

export const FAKE_TX: Hex = `0x${'ab'.repeat(32)}`;

/** Fake backends for network `base` (the name the test config gives its network). */
export function fakePayments(network = 'base'): FakePayments {
  const fake: FakePayments = {
    verifyAnswer: undefined,
    settleAnswer: undefined,
    settleDelayMs: 0,
    verified: [],
    settled: [],
    backends: {
      backendsFor: () => ({
        verifiers: new Map([[network, { verify: async (payment: DecodedPayment, _option: PaymentOption) => {
          fake.verified.push(payment);
          return fake.verifyAnswer?.(payment) ?? { valid: true, payer: payment.payload.authorization.from };
        } }]]),
        settlers: new Map([[network, { settle: async (payment: DecodedPayment) => {
          fake.settled.push(payment);
          if (fake.settleDelayMs > 0) await new Promise((r) => setTimeout(r, fake.settleDelayMs));
          return fake.settleAnswer?.(payment) ?? { success: true, transaction: FAKE_TX, payer: payment.payload.authorization.from };
        } }]]),
        proofs: new Map(),
      }),
      checkFacilitators: async () => [],
      checkAssets: async () => [],
      settlerBalances: () => [],
      close: async () => {},
    },
  };
  return fake;
}

/**
 * A well-formed v2 payment header for the requirement a 402 offered (`accepted`), with a fresh
 * nonce and a signature only the fake verifier will accept.
 */
export function paymentHeaderFor(accepted: Record<string, unknown>, from: Hex = '0x1111111111111111111111111111111111111111'): Record<string, string> {
  const payload = {
    x402Version: 2,
    accepted,
    payload: {
      signature: `0x${'22'.repeat(65)}`,
      authorization: {
        from,
        to: accepted['payTo'],
        value: accepted['amount'],
        validAfter: '0',
        validBefore: String(Math.floor(Date.now() / 1000) + 3600),
        nonce: `0x${randomBytes(32).toString('hex')}`,
      },
    },
  };
  return { 'PAYMENT-SIGNATURE': Buffer.from(JSON.stringify(payload)).toString('base64') };
}
