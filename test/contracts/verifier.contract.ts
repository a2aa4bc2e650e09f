/**
 * The contract of the `Verifier` port on the `exact` EVM scheme: the same bad payload gets the
 * same `reason` from every verifier, the reference facilitator's string (`@x402/evm`), so a
 * client branches the same way whichever verifies for the gateway. Each payload below is built
 * once per chain (`contractPayments`) and handed to every verifier, in
 * test/e2e/verifier.contract.test.ts: LocalExactEvmVerifier and FacilitatorVerifier in front of
 * the official facilitator.
 *
 * `reasons` names a verifier's known departure from the shared reason; each has its why beside it.
 */
import { toHex, type PrivateKeyAccount } from 'viem';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PaymentOption } from '../../src/config/types.js';
import { transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import type { Verifier } from '../../src/payments/ports.js';
import type { DecodedPayment, Eip3009Authorization } from '../../src/protocol/types.js';
import { makePayment, PAYMENT_CONTEXT, type PaymentOverrides } from '../helpers/options.js';

/** What the payloads need from the chain they are verified on. */
export interface VerifierWorld {
  /** The option every payload is checked against (its asset on the world's chain). */
  readonly option: PaymentOption;
  /** Funded with more than `option.amount`. */
  readonly payer: PrivateKeyAccount;
  /** Holds none of the asset. */
  readonly unfunded: PrivateKeyAccount;
  /** Neither payer nor payee. */
  readonly stranger: PrivateKeyAccount;
  /** Settles `payment` on chain, so its nonce is used. */
  spend(payment: DecodedPayment, option: PaymentOption): Promise<void>;
}

interface ContractCase {
  readonly name: string;
  /** undefined: the payment is valid. */
  readonly reason: string | undefined;
  readonly build: (world: VerifierWorld, nowSeconds: bigint) => Promise<DecodedPayment>;
}

/** A payment for `world.option` signed by `signer` (the payer by default) over `auth`. */
async function signedPayment(
  world: VerifierWorld,
  nowSeconds: bigint,
  auth: Partial<Eip3009Authorization> = {},
  opts: { readonly signer?: PrivateKeyAccount; readonly from?: PrivateKeyAccount } & Omit<PaymentOverrides, 'authorization' | 'signature' | 'option'> = {},
): Promise<DecodedPayment> {
  const { signer = world.payer, from = signer, ...overrides } = opts;
  const authorization: Eip3009Authorization = {
    from: from.address,
    to: world.option.payTo,
    value: world.option.amount,
    validAfter: nowSeconds - 600n,
    validBefore: nowSeconds + 300n,
    nonce: toHex(crypto.getRandomValues(new Uint8Array(32))),
    ...auth,
  };
  const signature = await signer.signTypedData(transferWithAuthorizationTypedData(world.option.asset, authorization));
  return makePayment({ ...overrides, option: world.option, authorization, signature });
}

const CASES: readonly ContractCase[] = [
  { name: 'a good v2 payment', reason: undefined, build: (w, now) => signedPayment(w, now) },
  { name: 'a good v1 payment', reason: undefined, build: (w, now) => signedPayment(w, now, {}, { x402Version: 1 }) },
  {
    name: 'wrong signature: signed by another key than `from`',
    reason: 'invalid_exact_evm_signature',
    build: (w, now) => signedPayment(w, now, {}, { signer: w.stranger, from: w.payer }),
  },
  {
    name: 'wrong recipient: `to` is not the payee',
    reason: 'invalid_exact_evm_recipient_mismatch',
    build: (w, now) => signedPayment(w, now, { to: w.stranger.address }),
  },
  {
    name: 'wrong amount (v2)',
    reason: 'invalid_exact_evm_payload_authorization_value_mismatch',
    build: (w, now) => signedPayment(w, now, { value: w.option.amount + 1n }),
  },
  {
    name: 'wrong amount (v1)',
    reason: 'invalid_exact_evm_authorization_value',
    build: (w, now) => signedPayment(w, now, { value: w.option.amount - 1n }, { x402Version: 1 }),
  },
  {
    name: 'expired: validBefore inside the 6 s grace',
    reason: 'invalid_exact_evm_payload_authorization_valid_before',
    build: (w, now) => signedPayment(w, now, { validBefore: now + 3n }),
  },
  {
    name: 'not yet valid: validAfter an hour ahead',
    reason: 'invalid_exact_evm_payload_authorization_valid_after',
    build: (w, now) => signedPayment(w, now, { validAfter: now + 3_600n, validBefore: now + 7_200n }),
  },
  {
    name: 'used nonce: the authorization was already settled',
    reason: 'invalid_exact_evm_nonce_already_used',
    build: async (w, now) => {
      const payment = await signedPayment(w, now);
      await w.spend(payment, w.option);
      return payment;
    },
  },
  {
    name: 'insufficient balance',
    reason: 'invalid_exact_evm_insufficient_balance',
    build: (w, now) => signedPayment(w, now, {}, { signer: w.unfunded }),
  },
  {
    name: 'wrong network: a payload for another chain',
    reason: 'invalid_exact_evm_network_mismatch',
    build: (w, now) => signedPayment(w, now, {}, { network: 'eip155:84532' }),
  },
  {
    name: 'wrong scheme: the echoed requirement names another scheme',
    reason: 'invalid_exact_evm_scheme',
    build: async (w, now) => {
      const good = await signedPayment(w, now);
      const accepted = good.accepted;
      if (accepted === undefined) throw new Error('v2 payment without accepted');
      return signedPayment(w, now, {}, { accepted: { ...accepted, scheme: 'upto' } });
    },
  },
];

/** The name of every case, in order. */
export const VERIFIER_CONTRACT_CASES: readonly string[] = CASES.map((c) => c.name);

/** The payloads of the suite, each built once on first use and then given to every verifier. */
export class ContractPayments {
  readonly #built = new Map<string, Promise<DecodedPayment>>();
  readonly #nowSeconds = BigInt(Math.floor(Date.now() / 1000));

  constructor(private readonly world: VerifierWorld) {}

  /** The option every payment is checked against. */
  get option(): PaymentOption {
    return this.world.option;
  }

  payment(c: ContractCase): Promise<DecodedPayment> {
    let built = this.#built.get(c.name);
    if (built === undefined) {
      built = c.build(this.world, this.#nowSeconds);
      this.#built.set(c.name, built);
    }
    return built;
  }
}

/**
 * Defines the suite for one verifier. `reasons` maps a case name to the reason this verifier
 * really gives where it departs from the shared one (say why at the call site).
 */
export function verifierContract(
  name: string,
  verifier: () => Verifier,
  payments: () => ContractPayments,
  reasons: Readonly<Record<string, string>> = {},
): void {
  describe(`Verifier contract: ${name}`, () => {
    beforeAll(() => {
      for (const known of Object.keys(reasons)) {
        if (!CASES.some((c) => c.name === known)) throw new Error(`no contract case named ${JSON.stringify(known)}`);
      }
    });

    it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const payment = await payments().payment(c);
      const result = await verifier().verify(payment, payments().option, PAYMENT_CONTEXT);
      const payer = payment.payload.authorization.from;
      const reason = reasons[c.name] ?? c.reason;
      // toMatchObject: a facilitator may add a `message`; the reason is the contract.
      expect(result).toMatchObject(reason === undefined ? { valid: true, payer } : { valid: false, reason, payer });
    });
  });
}
