/**
 * `settlement: deferred` in batches, through the running gateway, paid by the official v2 client
 * on a real chain, balances on chain the judge:
 *
 *   - 50 payments of five payers settle in a handful of transactions, each charged once;
 *   - a payer that empties its wallet after being served and before the flush: its items fail
 *     (bad debt on /metrics, a warning line each, the status URL says failed), the rest of the
 *     batch settles, and that payer is from then on settled at once (a hash in its receipt).
 *
 * The batch wait is a minute, the batch size 50: a batch goes out when the 50th payment is
 * queued, so the payer's move certainly comes before it, with no race against a timer.
 */
import { pino } from 'pino';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { createDevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, TEST_USDC_ABI } from '../../src/tools/devchain/token.js';
import { PAYEE, PAYER, PAYER_KEY, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import {
  BAD_DEBT_CHEAP,
  deferredBase,
  EXTRA_PAYER_KEYS,
  finalStatuses,
  fundPayers,
  metricValue,
  MILLI,
  receiptOf,
  settlementStatus,
  settlerTransactions,
  SINK,
  statusUrlOf,
  type PaymentReceipt,
} from '../helpers/deferred.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PAYERS = EXTRA_PAYER_KEYS.map((key) => ({ key, address: privateKeyToAccount(key).address, pay: v2Fetch(key) }));
const BAD_DEBT_LINE = 'deferred payment served and not settled (bad debt)';
const REVENUE_CHEAP = 'x402_gateway_revenue_atomic_total{route="GET /cheap",asset="usdc@base",network="eip155:8453"}';
const BATCH_FAILED = 'x402_gateway_settlements_total{outcome="failed",mode="batch"}';

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  [world, upstream] = await Promise.all([startChainWorld(), startUpstream()]);
  await fundPayers(world, EXTRA_PAYER_KEYS, 1_000_000n);
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, 'maxSize: 50, maxWaitMs: 60000') })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
`,
    { logger },
  );
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

/** Pays `GET /cheap?<query>` with `pay`; the answer must be a 200. */
async function paid(pay: typeof fetch, query: string): Promise<PaymentReceipt> {
  const res = await pay(`${gw.url}/cheap?${query}`);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  return receiptOf(res);
}

const balancesOf = (addresses: readonly `0x${string}`[]) => Promise.all(addresses.map((a) => world.balance(a)));

describe('settlement: deferred, in batches', () => {
  it('50 payments of five payers settle in a handful of transactions, each charged once', async () => {
    const addresses = PAYERS.map((p) => p.address);
    const before = await balancesOf(addresses);
    const payeeBefore = await world.balance(PAYEE);
    const txBefore = await settlerTransactions(world);

    const receipts = await Promise.all(Array.from({ length: 50 }, (_, i) => paid(PAYERS[i % PAYERS.length]!.pay, `n=${i}`)));
    for (const r of receipts) expect(r).toMatchObject({ success: true, transaction: '', extra: { settlement: 'deferred' } });

    const statuses = await finalStatuses(receipts.map(statusUrlOf), 30_000);
    expect(statuses.map((s) => s.status)).toEqual(Array(50).fill('settled'));
    const transactions = new Set(statuses.map((s) => s.transaction));
    const sent = (await settlerTransactions(world)) - txBefore;
    expect(sent).toBe(transactions.size);
    expect(sent).toBeGreaterThanOrEqual(1);
    expect(sent).toBeLessThanOrEqual(3);

    const after = await balancesOf(addresses);
    expect(after.map((b, i) => before[i]! - b)).toEqual(Array(PAYERS.length).fill(10n * MILLI));
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(50n * MILLI);
    // The gateway's first payments: every row it has.
    const rows = await gw.ledger.receipts({ limit: 1000 });
    expect(rows).toHaveLength(50);
    expect(rows.filter((r) => r.status !== 'settled')).toEqual([]);
    expect(new Set(rows.map((r) => r.nonce)).size).toBe(50);
    expect(await metricValue(gw.adminUrl, 'x402_gateway_settlement_batch_size_sum')).toBe(50);
    expect(await metricValue(gw.adminUrl, 'x402_gateway_settlement_batch_size_count')).toBe(sent);
    expect(await metricValue(gw.adminUrl, BAD_DEBT_CHEAP)).toBe(0);
    expect(await metricValue(gw.adminUrl, REVENUE_CHEAP)).toBe(Number(50n * MILLI));
  }, 60_000);

  it('a payer that empties its wallet before the flush: its items fail as bad debt, the rest of the batch settles, and it is then settled at once', async () => {
    const mover = v2Fetch(PAYER_KEY);
    const moverReceipts = [await paid(mover, 'mover=1'), await paid(mover, 'mover=2')];
    for (const r of moverReceipts) expect(r).toMatchObject({ transaction: '', payer: PAYER });

    // Served, and owing: the payer moves everything it has to another address.
    const funds = await world.balance(PAYER);
    const sinkBefore = await world.balance(SINK);
    const moverWallet = createDevChainClient(world.chain, PAYER_KEY);
    await moverWallet.waitForTransactionReceipt({ hash: await moverWallet.writeContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName: 'transfer', args: [SINK, funds] }) });
    expect(await world.balance(PAYER)).toBe(0n);
    for (const r of moverReceipts) expect(await settlementStatus(statusUrlOf(r))).toMatchObject({ status: 'queued' });

    // The other payers fill the batch to its 50: it goes out now, the mover's two items in it.
    const others = PAYERS.map((p) => p.address);
    const before = await balancesOf(others);
    const payeeBefore = await world.balance(PAYEE);
    const txBefore = await settlerTransactions(world);
    const otherReceipts = await Promise.all(Array.from({ length: 48 }, (_, i) => paid(PAYERS[i % PAYERS.length]!.pay, `other=${i}`)));

    const moverStatuses = await finalStatuses(moverReceipts.map(statusUrlOf), 30_000);
    const otherStatuses = await finalStatuses(otherReceipts.map(statusUrlOf), 30_000);
    for (const s of moverStatuses) expect(s).toMatchObject({ status: 'failed', reason: expect.any(String) });
    expect(moverStatuses.every((s) => s.transaction === undefined)).toBe(true);
    expect(otherStatuses.map((s) => s.status)).toEqual(Array(48).fill('settled'));
    // One batch carried them all: the mover's items were dropped from it, not sent on their own.
    expect(new Set(otherStatuses.map((s) => s.transaction)).size).toBe(1);
    expect((await settlerTransactions(world)) - txBefore).toBe(1);

    const after = await balancesOf(others);
    expect(after.map((b, i) => before[i]! - b)).toEqual([10n, 10n, 10n, 9n, 9n].map((n) => n * MILLI));
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(48n * MILLI);
    expect((await world.balance(SINK)) - sinkBefore).toBe(funds);
    expect(await world.balance(PAYER)).toBe(0n);

    expect(await metricValue(gw.adminUrl, BAD_DEBT_CHEAP)).toBe(Number(2n * MILLI));
    expect(await metricValue(gw.adminUrl, BATCH_FAILED)).toBe(2);
    expect(await metricValue(gw.adminUrl, REVENUE_CHEAP)).toBe(Number(98n * MILLI));
    // What the failed items owed is no longer counted as exposure.
    expect(await metricValue(gw.adminUrl, 'x402_gateway_deferred_queued_atomic{asset="usdc@base",network="eip155:8453"}')).toBe(0);
    const warnings = logLines.filter((l) => l['msg'] === BAD_DEBT_LINE);
    expect(warnings).toHaveLength(2);
    for (const w of warnings) expect(w).toMatchObject({ level: 40, payer: PAYER, amount: MILLI.toString(), route: 'GET /cheap' });
    expect(new Set(warnings.map((w) => w['id']))).toEqual(new Set(moverReceipts.map((r) => r.extra?.id)));
    const moverRows = async () => (await gw.ledger.receipts({ limit: 1000 })).filter((r) => r.payer.toLowerCase() === PAYER.toLowerCase());
    expect((await moverRows()).map((r) => r.status)).toEqual(['settle_failed', 'settle_failed']);

    // Funded again, the payer is served, but settled at once: a transaction in its receipt.
    await fundPayers(world, [PAYER_KEY], 1_000_000n);
    const moved = await world.moved(async () => {
      const receipt = await paid(mover, 'mover=3');
      expect(receipt).toMatchObject({ success: true, payer: PAYER });
      expect(receipt.transaction).toMatch(/^0x[0-9a-f]{64}$/);
      expect(receipt.extra).toBeUndefined();
    });
    expect(moved).toEqual({ payer: -MILLI, payee: MILLI });
    expect((await moverRows()).map((r) => r.status).sort()).toEqual(['settle_failed', 'settle_failed', 'settled']);
    expect((await gw.ledger.queueStats()).count).toBe(0);
  }, 60_000);
});
