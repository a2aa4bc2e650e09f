/**
 * CachedVerifier around a fake inner verifier that records calls and answers what each test
 * scripts: collapse of concurrent calls, no positive caching, used nonces, final refusals, and
 * the balance TTL on an injected clock.
 */
import { toHex } from 'viem';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Address, PaymentOption } from '../../src/config/types.js';
import { InfrastructureError } from '../../src/errors.js';
import { CachedVerifier, DEFAULT_BALANCE_TTL_MS } from '../../src/payments/cached-verifier.js';
import type { Verifier, VerifyResult } from '../../src/payments/ports.js';
import { withWire } from '../../src/protocol/option-wire.js';
import type { DecodedPayment, Eip3009Authorization, Hex } from '../../src/protocol/types.js';
import { fixedClockMs, type TestClock } from '../helpers/clock.js';
import { makePayment, PAY_TO, PAYMENT_CONTEXT, USDC_BASE } from '../helpers/options.js';

const ASSET = USDC_BASE;
const PAYER: Address = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const OPTION: PaymentOption = withWire({ scheme: 'exact', asset: ASSET, amount: 10_000n, payTo: PAY_TO, maxTimeoutSeconds: 300 });

let counter = 0;
/** A payment; the cache never looks inside the signature, so any bytes do. */
function payment(overrides: Partial<Eip3009Authorization> = {}, signature?: Hex): DecodedPayment {
  counter++;
  return makePayment({
    option: OPTION,
    authorization: { from: PAYER, validBefore: 2_000_000_000n, nonce: toHex(counter, { size: 32 }), ...overrides },
    signature: signature ?? toHex(counter, { size: 65 }),
  });
}

/** An inner verifier whose answers the test scripts; each call waits for `release` when gated. */
class ScriptedVerifier implements Verifier {
  calls = 0;
  answer: VerifyResult | Error = { valid: true, payer: PAYER };
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  gate(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }
  async verify(): Promise<VerifyResult> {
    this.calls++;
    if (this.#gate !== undefined) await this.#gate;
    if (this.answer instanceof Error) throw this.answer;
    return this.answer;
  }
}

const refusal = (reason: string): VerifyResult => ({ valid: false, reason, payer: PAYER });

let inner: ScriptedVerifier;
let clock: TestClock;
let cached: CachedVerifier;
beforeEach(() => {
  inner = new ScriptedVerifier();
  clock = fixedClockMs(1_750_000_000_000);
  cached = new CachedVerifier(inner, { clock });
});

describe('CachedVerifier: in-flight collapse', () => {
  it('runs concurrent identical verifications once and gives every caller the answer', async () => {
    const p = payment();
    inner.gate();
    const pending = [cached.verify(p, OPTION, PAYMENT_CONTEXT), cached.verify(p, OPTION, PAYMENT_CONTEXT), cached.verify({ ...p }, OPTION, PAYMENT_CONTEXT)];
    inner.release();
    const results = await Promise.all(pending);
    expect(inner.calls).toBe(1);
    expect(results).toEqual([inner.answer, inner.answer, inner.answer]);
    expect(cached.counters).toEqual({ hits: 0, misses: 1, collapsed: 2 });
  });

  it('does not collapse different payments, or one payment for different options', async () => {
    const p = payment();
    inner.gate();
    const pending = [
      cached.verify(p, OPTION, PAYMENT_CONTEXT),
      cached.verify(payment(), OPTION, PAYMENT_CONTEXT),
      cached.verify(p, { ...OPTION, amount: 20_000n }, PAYMENT_CONTEXT),
      cached.verify(p, { ...OPTION, asset: { ...ASSET, eip712Name: 'USDC' } }, PAYMENT_CONTEXT),
    ];
    inner.release();
    await Promise.all(pending);
    expect(inner.calls).toBe(4);
  });

  it('does not let a payload with the same signature but altered fields share the answer', async () => {
    const p = payment();
    const altered = payment({ nonce: p.payload.authorization.nonce, value: 1n }, p.payload.signature);
    inner.gate();
    const pending = [cached.verify(p, OPTION, PAYMENT_CONTEXT), cached.verify(altered, OPTION, PAYMENT_CONTEXT)];
    inner.release();
    await Promise.all(pending);
    expect(inner.calls).toBe(2);
  });

  it('shares an infrastructure fault with every collapsed caller and caches nothing of it', async () => {
    const p = payment();
    inner.answer = new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', 'rpc down');
    inner.gate();
    const pending = [cached.verify(p, OPTION, PAYMENT_CONTEXT), cached.verify(p, OPTION, PAYMENT_CONTEXT)];
    inner.release();
    const settled = await Promise.allSettled(pending);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(inner.calls).toBe(1);
    inner.answer = { valid: true, payer: PAYER };
    expect(await cached.verify(p, OPTION, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER });
    expect(inner.calls).toBe(2);
  });
});

describe('CachedVerifier: what is never cached', () => {
  it('never caches "valid": it includes "nonce unused", which settling ends', async () => {
    const p = payment();
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    expect(inner.calls).toBe(3);
  });

  it('never caches "not yet valid": time fixes it', async () => {
    const p = payment();
    inner.answer = refusal('invalid_exact_evm_payload_authorization_valid_after');
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    inner.answer = { valid: true, payer: PAYER };
    expect((await cached.verify(p, OPTION, PAYMENT_CONTEXT)).valid).toBe(true);
  });
});

describe('CachedVerifier: used nonces', () => {
  it('remembers a used nonce for every payload with that (token, payer, nonce)', async () => {
    const first = payment();
    inner.answer = refusal('invalid_exact_evm_nonce_already_used');
    await cached.verify(first, OPTION, PAYMENT_CONTEXT);
    inner.answer = { valid: true, payer: PAYER };

    // Another payload (other signature, other option) reusing the nonce: answered from cache.
    const reuse = payment({ nonce: first.payload.authorization.nonce });
    expect(await cached.verify(reuse, { ...OPTION, amount: 10_000n, maxTimeoutSeconds: 60 }, PAYMENT_CONTEXT)).toEqual(
      refusal('invalid_exact_evm_nonce_already_used'),
    );
    // Days later, still.
    clock.advanceMs(86_400_000);
    expect(await cached.verify(first, OPTION, PAYMENT_CONTEXT)).toEqual(refusal('invalid_exact_evm_nonce_already_used'));
    expect(inner.calls).toBe(1);
    expect(cached.counters.hits).toBe(2);
  });

  it('keys the nonce by token and payer: the same nonce elsewhere is asked again', async () => {
    const first = payment();
    inner.answer = refusal('invalid_exact_evm_nonce_already_used');
    await cached.verify(first, OPTION, PAYMENT_CONTEXT);
    inner.answer = { valid: true, payer: PAYER };
    const otherPayer = payment({ nonce: first.payload.authorization.nonce, from: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' });
    expect((await cached.verify(otherPayer, OPTION, PAYMENT_CONTEXT)).valid).toBe(true);
    const otherToken = { ...OPTION, asset: { ...ASSET, address: '0x036CbD53842c5426634e7929541eC2318f3dCF7e' as const } };
    expect((await cached.verify(first, otherToken, PAYMENT_CONTEXT)).valid).toBe(true);
    expect(inner.calls).toBe(3);
  });
});

describe('CachedVerifier: final refusals', () => {
  it.each([
    'invalid_exact_evm_scheme',
    'invalid_exact_evm_network_mismatch',
    'invalid_exact_evm_signature',
    'invalid_exact_evm_recipient_mismatch',
    'invalid_exact_evm_payload_authorization_valid_before',
    'invalid_exact_evm_payload_authorization_value_mismatch',
    'invalid_exact_evm_authorization_value',
  ])('keeps %s for the same payment and option', async (reason) => {
    const p = payment();
    inner.answer = refusal(reason);
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    clock.advanceMs(3_600_000);
    expect(await cached.verify(p, OPTION, PAYMENT_CONTEXT)).toEqual(refusal(reason));
    expect(inner.calls).toBe(1);
    // Not for another option: the answer depended on it.
    await cached.verify(p, { ...OPTION, payTo: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' }, PAYMENT_CONTEXT);
    expect(inner.calls).toBe(2);
  });
});

describe('CachedVerifier: insufficient balance', () => {
  it('is reused for the TTL only, on the injected clock', async () => {
    const p = payment();
    inner.answer = refusal('invalid_exact_evm_insufficient_balance');
    await cached.verify(p, OPTION, PAYMENT_CONTEXT);
    clock.advanceMs(DEFAULT_BALANCE_TTL_MS - 1);
    expect(await cached.verify(p, OPTION, PAYMENT_CONTEXT)).toEqual(refusal('invalid_exact_evm_insufficient_balance'));
    expect(inner.calls).toBe(1);

    // The payer topped up; after the TTL the chain is asked again.
    inner.answer = { valid: true, payer: PAYER };
    clock.advanceMs(1);
    expect((await cached.verify(p, OPTION, PAYMENT_CONTEXT)).valid).toBe(true);
    expect(inner.calls).toBe(2);
  });

  it('takes the TTL from the options', async () => {
    const short = new CachedVerifier(inner, { clock, balanceTtlMs: 100 });
    const p = payment();
    inner.answer = refusal('invalid_exact_evm_insufficient_balance');
    await short.verify(p, OPTION, PAYMENT_CONTEXT);
    clock.advanceMs(100);
    await short.verify(p, OPTION, PAYMENT_CONTEXT);
    expect(inner.calls).toBe(2);
  });
});
