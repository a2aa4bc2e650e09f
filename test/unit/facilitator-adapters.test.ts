/**
 * FacilitatorVerifier / FacilitatorSettler over fake facilitators on real sockets: what is sent,
 * when to fall back, when an answer is final, and when a failed settlement may still be on chain.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InfrastructureError } from '../../src/errors.js';
import { FacilitatorClient, createFacilitatorDispatcher } from '../../src/payments/facilitator/client.js';
import { expectedFacilitatorKinds } from '../../src/payments/facilitator/request.js';
import { FacilitatorSettler } from '../../src/payments/facilitator/settler.js';
import { FacilitatorVerifier } from '../../src/payments/facilitator/verifier.js';
import { requirementV1, requirementV2 } from '../../src/protocol/challenge.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { startFakeFacilitator, type FakeFacilitator } from '../helpers/facilitator.js';
import { makeOption, makePayment, PAYMENT_CONTEXT, USDC_ARBITRUM } from '../helpers/options.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';
import { checkFacilitatorSupport } from '../../src/payments/facilitator/support.js';
import { PaymentBackendCache } from '../../src/payment-backends.js';
import { systemClock } from '../../src/payments/ports.js';
import { gatewayYamlHead, parseTestConfig } from '../helpers/gateway.js';

const PAYER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const PAY_TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const TX = `0x${'cd'.repeat(32)}` as const;
const option = makeOption({ payTo: PAY_TO });

/** From PAYER (makePayment's default payer) to PAY_TO, for `option`. */
const payment = (version: 1 | 2): DecodedPayment => makePayment({ x402Version: version, option });

const dispatcher = createFacilitatorDispatcher();
let a: FakeFacilitator;
let b: FakeFacilitator;
let dead: string;

/** Fakes answer at once; the budget only bounds the ones told to hang. */
function clients(...urls: string[]): FacilitatorClient[] {
  return urls.map((url) => new FacilitatorClient({ url, headers: {}, timeoutMs: 300 }, { dispatcher }));
}

beforeAll(async () => {
  [a, b, dead] = await Promise.all([startFakeFacilitator(), startFakeFacilitator(), closedLoopbackUrl()]);
});
afterEach(() => {
  a.answer(() => ({ status: 404 }));
  b.answer(() => ({ status: 404 }));
});
afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
  await dispatcher.close();
});

function calls(fake: FakeFacilitator, from: number, path: string): number {
  return fake.requests.slice(from).filter((r) => r.path === path).length;
}

describe('what is sent', () => {
  it('v2: the payload as received and our v2 requirement', async () => {
    a.answer(() => ({ status: 200, body: { isValid: true } }));
    const before = a.requests.length;
    const p = payment(2);
    await new FacilitatorVerifier(clients(a.url)).verify(p, option, PAYMENT_CONTEXT);
    expect(a.requests[before]?.body).toEqual({ x402Version: 2, paymentPayload: p.raw, paymentRequirements: requirementV2(option) });
  });

  it('v1: the payload as received and our v1 requirement for the request', async () => {
    a.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'base' } }));
    const before = a.requests.length;
    const p = payment(1);
    const context = { resourceUrl: 'https://api.example.com/v1/weather?q=1', route: { description: 'Weather', mimeType: 'application/json' } };
    const result = await new FacilitatorSettler(clients(a.url)).settle(p, option, context);
    expect(result).toEqual({ success: true, transaction: TX, payer: PAYER });
    const sent = a.requests[before]?.body;
    expect(sent).toEqual({ x402Version: 1, paymentPayload: p.raw, paymentRequirements: requirementV1(option, context.resourceUrl, context.route) });
    expect(sent).toMatchObject({ paymentRequirements: { maxAmountRequired: '10000', network: 'base', resource: context.resourceUrl } });
  });

  it('v1 on a network without a v1 name: refused without asking anyone', async () => {
    const before = a.requests.length;
    const noV1 = makeOption({ payTo: PAY_TO, asset: USDC_ARBITRUM });
    expect(await new FacilitatorVerifier(clients(a.url)).verify(payment(1), noV1, PAYMENT_CONTEXT)).toMatchObject({ valid: false, reason: 'invalid_network' });
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(1), noV1, PAYMENT_CONTEXT)).toMatchObject({ success: false, maybeOnChain: false });
    expect(a.requests.length).toBe(before);
  });
});

describe('FacilitatorVerifier', () => {
  it('returns the payer from the authorization on a valid answer', async () => {
    a.answer(() => ({ status: 200, body: { isValid: true, payer: '0x0000000000000000000000000000000000000001' } }));
    expect(await new FacilitatorVerifier(clients(a.url)).verify(payment(2), option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER });
  });

  it('a refusal is final: the next facilitator is not asked', async () => {
    a.answer(() => ({ status: 400, body: { isValid: false, invalidReason: 'invalid_exact_evm_signature', invalidMessage: 'nope' } }));
    b.answer(() => ({ status: 200, body: { isValid: true } }));
    const before = b.requests.length;
    expect(await new FacilitatorVerifier(clients(a.url, b.url)).verify(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      valid: false,
      reason: 'invalid_exact_evm_signature',
      message: 'nope',
      payer: PAYER,
    });
    expect(b.requests.length).toBe(before);
  });

  it.each([
    ['a 500', { status: 500, body: { error: 'boom' } }],
    ['a malformed 200', { status: 200, body: 'not json' }],
    ['a 401', { status: 401, body: { error: 'unauthorized' } }],
  ])('falls back past %s', async (_name, answer) => {
    a.answer(() => answer);
    b.answer(() => ({ status: 200, body: { isValid: true } }));
    expect(await new FacilitatorVerifier(clients(a.url, b.url)).verify(payment(2), option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER });
  });

  it('falls back past a dead one', async () => {
    b.answer(() => ({ status: 200, body: { isValid: true } }));
    expect(await new FacilitatorVerifier(clients(dead, b.url)).verify(payment(2), option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER });
  });

  it('an ERC-6492 wrapper that does not decode is refused without asking (the reference facilitator 500s on it)', async () => {
    a.answer(() => ({ status: 500, body: { error: 'Number "7764…n" is not in safe integer range' } }));
    const before = a.requests.length;
    const signature = `0x${'ab'.repeat(200)}${'6492'.repeat(16)}` as const;
    for (const version of [1, 2] as const) {
      const p = payment(version);
      const garbage: DecodedPayment = { ...p, payload: { ...p.payload, signature } };
      expect(await new FacilitatorVerifier(clients(a.url)).verify(garbage, option, PAYMENT_CONTEXT)).toEqual({ valid: false, reason: 'invalid_exact_evm_signature', payer: PAYER });
    }
    expect(a.requests.length).toBe(before);
  });

  it('throws GW_ERR_FACILITATOR_UNAVAILABLE when none answers', async () => {
    a.answer(() => ({ status: 502, body: 'bad gateway' }));
    const err = await new FacilitatorVerifier(clients(dead, a.url)).verify(payment(2), option, PAYMENT_CONTEXT).catch((e: unknown) => e);
    if (!(err instanceof InfrastructureError)) throw new Error(`expected an InfrastructureError, got ${String(err)}`);
    expect(err.code).toBe('GW_ERR_FACILITATOR_UNAVAILABLE');
    expect(err.message).toContain(dead);
    expect(err.cause).toBeInstanceOf(AggregateError);
  });
});

describe('FacilitatorSettler', () => {
  it('succeeds with the transaction and the authorization signer as payer', async () => {
    a.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'eip155:8453', payer: PAYER } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({ success: true, transaction: TX, payer: PAYER });
  });

  it('a 200 {success:false} is a failure, final, and nothing moved', async () => {
    a.answer(() => ({
      status: 200,
      body: { success: false, errorReason: 'invalid_exact_evm_payload_authorization_valid_before', transaction: '', network: 'eip155:8453' },
    }));
    const before = b.requests.length;
    expect(await new FacilitatorSettler(clients(a.url, b.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_before',
      maybeOnChain: false,
    });
    expect(b.requests.length).toBe(before);
  });

  it('keeps the hash of a reverted transaction, not on chain', async () => {
    a.answer(() => ({ status: 200, body: { success: false, errorReason: 'invalid_exact_evm_transaction_failed', transaction: TX } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_transaction_failed',
      transaction: TX,
      maybeOnChain: false,
    });
  });

  it('a failure that names a broadcast transaction may still land', async () => {
    a.answer(() => ({ status: 200, body: { success: false, errorReason: 'invalid_transaction_state', transaction: TX } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({ success: false, transaction: TX, maybeOnChain: true });
  });

  it('all refused connections: unexpected_settle_error, certainly not on chain', async () => {
    const other = await closedLoopbackUrl();
    const result = await new FacilitatorSettler(clients(dead, other)).settle(payment(2), option, PAYMENT_CONTEXT);
    expect(result).toMatchObject({ success: false, reason: 'unexpected_settle_error', maybeOnChain: false });
  });

  it('all failing after one timed out: maybe on chain', async () => {
    a.answer(() => ({ status: 200, hang: true }));
    const result = await new FacilitatorSettler(clients(a.url, dead)).settle(payment(2), option, PAYMENT_CONTEXT);
    expect(result).toMatchObject({ success: false, reason: 'unexpected_settle_error', maybeOnChain: true });
  });

  it('a 5xx may have been received: maybe on chain', async () => {
    a.answer(() => ({ status: 500, body: { error: 'rpc down after broadcast?' } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({ success: false, maybeOnChain: true });
  });

  it('falls back after a timeout and takes the next success', async () => {
    a.answer(() => ({ status: 200, hang: true }));
    b.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'eip155:8453' } }));
    expect(await new FacilitatorSettler(clients(a.url, b.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({ success: true, transaction: TX, payer: PAYER });
  });

  it('a refusal after an earlier timeout may be the earlier one succeeding: maybe on chain', async () => {
    a.answer(() => ({ status: 200, hang: true }));
    b.answer(() => ({ status: 200, body: { success: false, errorReason: 'invalid_exact_evm_nonce_already_used', transaction: '' } }));
    expect(await new FacilitatorSettler(clients(a.url, b.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_nonce_already_used',
      maybeOnChain: true,
    });
  });

  it('settlement_pending: asks the same facilitator once more and takes its success', async () => {
    let n = 0;
    a.answer(() =>
      ++n === 1
        ? { status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: TX, network: 'eip155:8453' } }
        : { status: 200, body: { success: true, transaction: TX, network: 'eip155:8453' } },
    );
    const before = a.requests.length;
    expect(await new FacilitatorSettler(clients(a.url, b.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({ success: true, transaction: TX, payer: PAYER });
    expect(calls(a, before, '/settle')).toBe(2);
    expect(a.requests[before]?.body).toEqual(a.requests[before + 1]?.body);
  });

  it('settlement_pending twice: gives up after one retry, maybe on chain, with the hash', async () => {
    a.answer(() => ({ status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: TX, errorMessage: 'receipt wait timed out' } }));
    const before = a.requests.length;
    const beforeB = b.requests.length;
    expect(await new FacilitatorSettler(clients(a.url, b.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      success: false,
      reason: 'settlement_pending',
      message: 'receipt wait timed out',
      transaction: TX,
      maybeOnChain: true,
    });
    expect(calls(a, before, '/settle')).toBe(2);
    expect(b.requests.length).toBe(beforeB);
  });

  it('settlement_pending, then a refusal without a hash: maybe on chain (the first broadcast may have spent it), with the first hash', async () => {
    let n = 0;
    a.answer(() =>
      ++n === 1
        ? { status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: TX } }
        : { status: 200, body: { success: false, errorReason: 'invalid_exact_evm_nonce_already_used', transaction: '' } },
    );
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: 'invalid_exact_evm_nonce_already_used',
      transaction: TX,
      maybeOnChain: true,
    });
  });

  it('settlement_pending, then that very transaction reverted: nothing moved', async () => {
    let n = 0;
    a.answer(() =>
      ++n === 1
        ? { status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: TX } }
        : { status: 200, body: { success: false, errorReason: 'invalid_exact_evm_transaction_failed', transaction: TX } },
    );
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: 'invalid_exact_evm_transaction_failed',
      transaction: TX,
      maybeOnChain: false,
    });
  });

  it('settlement_pending, then the facilitator goes away: maybe on chain, with the hash', async () => {
    let n = 0;
    a.answer(() => (++n === 1 ? { status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: TX } } : { status: 503 }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: 'settlement_pending',
      transaction: TX,
      maybeOnChain: true,
    });
  });

  it('settlement_pending without a hash is not retried, but may be on chain', async () => {
    a.answer(() => ({ status: 200, body: { success: false, errorReason: 'settlement_pending', transaction: '' } }));
    const before = a.requests.length;
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toEqual({
      success: false,
      reason: 'settlement_pending',
      maybeOnChain: true,
    });
    expect(calls(a, before, '/settle')).toBe(1);
  });

  it('an exception message as reason (the @x402/evm v1 settle catch-all) is an unknown outcome', async () => {
    a.answer(() => ({
      status: 200,
      body: { success: false, errorReason: 'Timed out while waiting for transaction with hash "0x…" to be confirmed.', transaction: '' },
    }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(1), option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: 'unexpected_settle_error',
      message: expect.stringContaining('Timed out'),
      maybeOnChain: true,
    });
  });

  it('a success on another network is not recorded as ours', async () => {
    a.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'eip155:1' } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(2), option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: 'unexpected_settle_error',
      transaction: TX,
      maybeOnChain: true,
    });
  });

  it('accepts a v1 network name in the success of a v1 payment', async () => {
    a.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'base' } }));
    expect(await new FacilitatorSettler(clients(a.url)).settle(payment(1), option, PAYMENT_CONTEXT)).toMatchObject({ success: true });
  });
});

describe('checkFacilitatorSupport', () => {
  it('reports missing kinds per facilitator, and unreachable ones', async () => {
    a.answer(() => ({ status: 200, body: { kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:8453' }] } }));
    b.answer(() => ({
      status: 200,
      body: {
        kinds: [
          { x402Version: 2, scheme: 'exact', network: 'eip155:8453' },
          { x402Version: 1, scheme: 'exact', network: 'base' },
        ],
      },
    }));
    const reports = await checkFacilitatorSupport(clients(a.url, b.url, dead), expectedFacilitatorKinds(option.asset.network));
    expect(reports).toEqual([
      { url: a.url, reachable: true, missing: [{ x402Version: 1, scheme: 'exact', network: 'base' }], kinds: expect.any(Array) },
      { url: b.url, reachable: true, missing: [], kinds: expect.any(Array) },
      { url: dead, reachable: false, authRefused: false, message: expect.stringContaining('ECONNREFUSED') },
    ]);
  });

  it('asks a facilitator that only settles (verification local) too', async () => {
    a.answer(() => ({ status: 200, body: { kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:8453' }] } }));
    const config = parseTestConfig(`${gatewayYamlHead({
      payTo: PAY_TO,
      network: `base: { network: "eip155:8453", rpc: "http://127.0.0.1:8545", verify: local, settle: { mode: facilitator, url: "${a.url}" } }`,
    })}
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /x", price: "$0.01" }
`);
    const pool = new PaymentBackendCache(systemClock);
    try {
      const from = a.requests.length;
      const [checked] = await pool.checkFacilitators(config);
      expect(checked).toMatchObject({ network: 'base', reports: [{ url: a.url, reachable: true }] });
      expect(calls(a, from, '/supported')).toBe(1);
    } finally {
      await pool.close();
    }
  });
});
