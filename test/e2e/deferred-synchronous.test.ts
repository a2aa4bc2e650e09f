/**
 * When a `settlement: deferred` route settles at once instead of queueing, on a real chain with
 * balances on chain: an authorization that would expire before its batch could land, and a
 * payment past the exposure cap on the total (`defaults.deferred.maxUnsettledTotal`, across
 * payers). Either way the payer is served, with a transaction hash in its receipt, and the money
 * has moved before the answer. What was queued is settled by the drain on close.
 *
 * The batch wait is a minute and the margin the default 30 s, so an authorization must stay valid
 * 90 s to be queued; the route's own minimum (the upstream's 30 s timeout and 15 s) is 45 s.
 */
import type { PaymentPayload, PaymentRequirements } from '@x402/core/types';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, PAYEE, startChainWorld, v2Fetch, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { deferredBase, EXTRA_PAYER_KEYS, fundPayers, metricValue, MILLI, receiptOf, settlementStatus, settlerTransactions, statusUrlOf, type PaymentReceipt } from '../helpers/deferred.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { ledgerReceipts } from '../helpers/gateway-process.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PAYERS = EXTRA_PAYER_KEYS.slice(0, 4).map((key) => ({ key, address: privateKeyToAccount(key).address }));

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;
let ledgerPath: string;

beforeAll(async () => {
  [world, upstream] = await Promise.all([startChainWorld(), startUpstream()]);
  await fundPayers(world, EXTRA_PAYER_KEYS.slice(0, 4), 1_000_000n);
  ledgerPath = join(mkdtempSync(join(tmpdir(), 'x402-deferred-sync-')), 'ledger.db');
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, 'maxSize: 50, maxWaitMs: 60000') })}
upstreams:
  api: { url: "${upstream.url}" }
defaults:
  deferred: { maxUnsettledPerPayer: "$1", maxUnsettledTotal: "$0.003" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
`,
    { ledgerPath },
  );
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

/** How each of `PAYERS` moved on chain while `fn` ran. */
async function movedEach(fn: () => Promise<void>): Promise<bigint[]> {
  const before = await Promise.all(PAYERS.map((p) => world.balance(p.address)));
  await fn();
  const after = await Promise.all(PAYERS.map((p) => world.balance(p.address)));
  return after.map((b, i) => b - before[i]!);
}

describe('settlement: deferred, settled at once', () => {
  it('an authorization that expires before its batch could land is settled at once, not queued', async () => {
    const payer = PAYERS[0]!;
    const http = v2HttpClient(payer.key);
    const challenge = await challengeOf(http, `${gw.url}/cheap`);
    const genuine = challenge.accepts[0] as PaymentRequirements;
    // The official client signs validBefore = now + maxTimeoutSeconds: 60 s clears the route's
    // 45 s minimum and falls short of the 90 s a queued one needs.
    const payload: PaymentPayload = await http.createPaymentPayload({ ...challenge, accepts: [{ ...genuine, maxTimeoutSeconds: 60 }] });
    const header = http.encodePaymentSignatureHeader({ ...payload, accepted: genuine });
    const authorization = (payload.payload as { authorization: { validBefore: string } }).authorization;
    expect(Number(authorization.validBefore) - Date.now() / 1000).toBeLessThan(90);

    const payeeBefore = await world.balance(PAYEE);
    const txBefore = await settlerTransactions(world);
    let receipt: PaymentReceipt | undefined;
    const moved = await movedEach(async () => {
      const res = await send(gw.url, 'GET', '/cheap', { headers: header });
      expect(res.status).toBe(200);
      receipt = decodeHeader(res.headers['payment-response']) as PaymentReceipt;
    });
    expect(receipt).toMatchObject({ success: true, payer: payer.address });
    expect(receipt?.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(receipt?.extra).toBeUndefined();
    expect(moved).toEqual([-MILLI, 0n, 0n, 0n]);
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(MILLI);
    expect((await settlerTransactions(world)) - txBefore).toBe(1);
    expect((await gw.ledger.queueStats()).count).toBe(0);
    expect((await gw.ledger.receipts({ limit: 1 }))[0]).toMatchObject({ status: 'settled', transaction: receipt?.transaction });
  });

  it('past the cap on the total owed (across payers) a payment settles at once; those under it stay queued, and the drain settles them', async () => {
    const [first, second, third, fourth] = PAYERS as [(typeof PAYERS)[number], (typeof PAYERS)[number], (typeof PAYERS)[number], (typeof PAYERS)[number]];
    const queued: PaymentReceipt[] = [];
    let late: PaymentReceipt | undefined;
    const moved = await movedEach(async () => {
      // $0.003 in all: three payers at $0.001 fill it, each far under its own $1.
      for (const payer of [second, third, fourth]) {
        const res = await v2Fetch(payer.key)(`${gw.url}/cheap`);
        expect(res.status).toBe(200);
        queued.push(receiptOf(res));
      }
      const res = await v2Fetch(first.key)(`${gw.url}/cheap`);
      expect(res.status).toBe(200);
      late = receiptOf(res);
    });
    for (const r of queued) expect(r).toMatchObject({ success: true, transaction: '', extra: { settlement: 'deferred' } });
    for (const r of queued) expect(await settlementStatus(statusUrlOf(r))).toMatchObject({ status: 'queued' });
    expect(late?.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(late?.extra).toBeUndefined();
    // Only the one past the cap has paid yet.
    expect(moved).toEqual([-MILLI, 0n, 0n, 0n]);
    expect(await metricValue(gw.adminUrl, 'x402_gateway_deferred_queued')).toBe(3);
    expect(await metricValue(gw.adminUrl, 'x402_gateway_deferred_queued_atomic{asset="usdc@base",network="eip155:8453"}')).toBe(Number(3n * MILLI));

    // Closing drains: the queue is settled before the gateway is gone.
    const drained = await movedEach(() => gw.close());
    expect(drained).toEqual([0n, -MILLI, -MILLI, -MILLI]);
    const rows = await ledgerReceipts(ledgerPath);
    expect(rows).toHaveLength(5);
    expect(rows.filter((r) => r.status !== 'settled')).toEqual([]);
  });
});
