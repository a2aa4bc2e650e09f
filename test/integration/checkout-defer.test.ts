/**
 * `settlement: deferred` in the checkout (`Checkout.defer`), on a real SQLite ledger: when a
 * payment is queued (its row, item and kept nonce in one write), and when it is settled at once
 * instead: an exposure cap, a payer whose deferred settlement failed, an authorization that would
 * expire before its batch. The settler is a fake that records its calls (the chain side is
 * batcher.test.ts's).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { Checkout, type AuthorizedPayment, type DeferPolicy } from '../../src/payments/checkout.js';
import type { Settler, Verifier } from '../../src/payments/ports.js';
import type { Hex } from '../../src/protocol/types.js';
import { fixedClock, type TestClock } from '../helpers/clock.js';
import { makeOption, makePayment, makeRoute } from '../helpers/options.js';

const NOW = 1_800_000_000n;
const option = makeOption(); // $0.01: 10,000 atomic units
const route = makeRoute([option], { settlement: 'after' });
const PAYER = '0x2222222222222222222222222222222222222222' as const;
const TX = `0x${'cd'.repeat(32)}` as Hex;
const POLICY: DeferPolicy = { caps: { perPayer: 30_000n, total: 1_000_000n }, penaltySeconds: 86_400, horizonSeconds: 60 };

let clock: TestClock;
let ledger: SqliteLedger;
let settled: string[];
let checkout: Checkout;
let serial = 0;

beforeEach(() => {
  clock = fixedClock(NOW);
  ledger = new SqliteLedger(':memory:', { clock });
  settled = [];
  const verifier: Verifier = { verify: async () => ({ valid: true, payer: PAYER }) };
  const settler: Settler = {
    settle: async (payment) => {
      settled.push(payment.payload.authorization.nonce);
      return { success: true, transaction: TX, payer: PAYER };
    },
  };
  checkout = new Checkout({ verifiers: new Map([['base', verifier]]), settlers: new Map([['base', settler]]), proofs: new Map(), ledger, clock });
});

afterEach(async () => {
  await ledger.close();
});

async function authorized(validBefore = NOW + 300n): Promise<AuthorizedPayment> {
  serial += 1;
  const nonce = `0x${serial.toString(16).padStart(64, '0')}` as Hex;
  const payment = makePayment({ option, authorization: { from: PAYER, validBefore, nonce } });
  const request = { requestId: `r${serial}`, route, method: 'GET', path: '/v1/weather', resourceUrl: 'http://gw/v1/weather' };
  const outcome = await checkout.authorize(payment, [option], request);
  if (outcome.kind !== 'authorized') throw new Error(`not authorized: ${JSON.stringify(outcome)}`);
  return outcome.authorized;
}

const rowOf = async (requestId: string) => (await ledger.receipts({})).find((r) => r.requestId === requestId);

describe('Checkout.defer', () => {
  it('queues: a queued row and item in one write, the nonce kept (a replay is refused), an unguessable id, nothing settled', async () => {
    const a = await authorized();
    const outcome = await checkout.defer(a, POLICY);
    expect(outcome).toMatchObject({ kind: 'queued', payer: PAYER });
    if (outcome.kind !== 'queued') return;
    expect(outcome.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(settled).toEqual([]);
    expect(await rowOf(a.request.requestId)).toMatchObject({ status: 'queued', amount: '10000', payer: PAYER, transaction: '' });
    expect(await ledger.deferredStatus(outcome.id)).toMatchObject({ state: 'queued', requestId: a.request.requestId });
    const [item] = await ledger.queuedDeferred(8453, 10);
    expect(item?.authorization).toMatchObject({ ...a.payment.payload.authorization, from: PAYER.toLowerCase(), to: option.payTo.toLowerCase() });
    expect(item?.signature).toBe(a.payment.payload.signature);
    const again = await checkout.authorize(a.payment, [option], { ...a.request, requestId: 'replay' });
    expect(again).toMatchObject({ kind: 'refused', reason: 'invalid_exact_evm_nonce_already_used' });
  });

  it('settles at once past the per-payer cap, and says why', async () => {
    for (let i = 0; i < 3; i++) expect((await checkout.defer(await authorized(), POLICY)).kind).toBe('queued');
    const fourth = await authorized();
    const outcome = await checkout.defer(fourth, POLICY);
    expect(outcome).toMatchObject({ kind: 'settled', synchronous: 'exposure_cap', transaction: TX });
    expect(settled).toEqual([fourth.nonceKey.nonce]);
    expect(await rowOf(fourth.request.requestId)).toMatchObject({ status: 'settled', transaction: TX, reason: 'deferred_exposure_cap' });
    expect((await ledger.queueStats()).count).toBe(3);
  });

  it('settles at once past the total cap', async () => {
    const outcome = await checkout.defer(await authorized(), { ...POLICY, caps: { perPayer: 1_000_000n, total: 9_999n } });
    expect(outcome).toMatchObject({ kind: 'settled', synchronous: 'exposure_cap' });
  });

  it('settles at once an authorization that would expire before its batch lands', async () => {
    const outcome = await checkout.defer(await authorized(NOW + 59n), POLICY);
    expect(outcome).toMatchObject({ kind: 'settled', synchronous: 'expires_before_batch' });
    expect((await ledger.queueStats()).count).toBe(0);
  });

  it('a payer whose deferred settlement failed is settled at once for penaltySeconds, then deferred again', async () => {
    const first = await checkout.defer(await authorized(), POLICY);
    if (first.kind !== 'queued') throw new Error('queued');
    await ledger.finishDeferred([{ id: first.id, state: 'failed', transaction: '', reason: 'authorization_failed_before_batch' }]);
    expect(await checkout.defer(await authorized(), POLICY)).toMatchObject({ kind: 'settled', synchronous: 'payer_penalised' });
    clock.advance(86_399);
    expect(await checkout.defer(await authorized(NOW + 200_000n), POLICY)).toMatchObject({ synchronous: 'payer_penalised' });
    clock.advance(2);
    expect((await checkout.defer(await authorized(NOW + 200_000n), POLICY)).kind).toBe('queued');
  });
});
