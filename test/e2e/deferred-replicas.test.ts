/**
 * `settlement: deferred` on two replicas: two gateways (in this process, each with its own
 * payment backends, batcher and reconciler) on one PostgreSQL store, settling with the same key,
 * paid by the official v2 client on a real chain. Payments go through both at once; the store's
 * lease lets one batcher work at a time, so every queued authorization goes into exactly one
 * batch: the payee gains exactly payments x price, no item fails, no row is settle_failed, and the
 * settler sent exactly the transactions the batches name, no more.
 */
import { pino, type Logger } from 'pino';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runGateway, type RunningGateway } from '../../src/server.js';
import { PAYEE, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import {
  BAD_DEBT_CHEAP,
  BATCH_SETTLER,
  deferredBase,
  EXTRA_PAYER_KEYS,
  finalStatuses,
  fundPayers,
  metricValue,
  MILLI,
  receiptOf,
  settlerTransactions,
  statusUrlOf,
} from '../helpers/deferred.js';
import { gatewayYamlHead, parseTestConfig } from '../helpers/gateway.js';
import { querySql, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PAYERS = EXTRA_PAYER_KEYS.slice(0, 4).map((key) => ({ key, address: privateKeyToAccount(key).address, pay: v2Fetch(key) }));
const PAYMENTS = 40;

let world: ChainWorld;
let upstream: TestUpstream;
let db: TestPostgres;
let databaseUrl: string;
const replicas: RunningGateway[] = [];
/** The `batch settled` lines of each replica, by replica index. */
const batchLines: Record<string, unknown>[][] = [[], []];

function loggerOf(index: number): Logger {
  return pino({ level: 'info' }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] === 'batch settled') batchLines[index]!.push(entry);
    },
  });
}

beforeAll(async () => {
  [world, upstream, db] = await Promise.all([startChainWorld(), startUpstream(), startPostgres()]);
  await fundPayers(world, EXTRA_PAYER_KEYS.slice(0, 4), 1_000_000n);
  databaseUrl = await db.newDatabase();
  const yaml = `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, 'maxSize: 50, maxWaitMs: 1000') })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
ledger: { store: postgres, url: "${databaseUrl}", pool: 4 }
`;
  // One after the other: the first migrates the schema.
  for (const index of [0, 1]) replicas.push(await runGateway(parseTestConfig(yaml), { logger: loggerOf(index) }));
}, 90_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await upstream?.close();
  await world?.stop();
  await db?.destroy();
});

it('payments through both replicas: one batcher at a time, each payment settled once, no item failed', async () => {
  const before = await Promise.all(PAYERS.map((p) => world.balance(p.address)));
  const payeeBefore = await world.balance(PAYEE);
  const txBefore = await settlerTransactions(world);

  // Two waves, each spread over both replicas and every payer, so both batchers see work twice.
  const receipts = [];
  for (const wave of [0, 1]) {
    const answers = await Promise.all(
      Array.from({ length: PAYMENTS / 2 }, async (_, i) => {
        const res = await PAYERS[i % PAYERS.length]!.pay(`${replicas[i % 2]!.url}/cheap?wave=${wave}&n=${i}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
        return receiptOf(res);
      }),
    );
    for (const r of answers) expect(r).toMatchObject({ success: true, transaction: '', extra: { settlement: 'deferred' } });
    receipts.push(...answers);
    await finalStatuses(answers.map(statusUrlOf), 30_000);
  }

  // Any replica answers for any payment: the status lives in the store.
  const statuses = await finalStatuses(receipts.map(statusUrlOf), 30_000, replicas[1]!.url);
  expect(statuses.map((s) => s.status)).toEqual(Array(PAYMENTS).fill('settled'));
  expect(new Set(statuses.map((s) => s.id)).size).toBe(PAYMENTS);

  // Each charged once, on chain.
  const after = await Promise.all(PAYERS.map((p) => world.balance(p.address)));
  expect(after.map((b, i) => before[i]! - b)).toEqual(Array(PAYERS.length).fill(10n * MILLI));
  expect((await world.balance(PAYEE)) - payeeBefore).toBe(BigInt(PAYMENTS) * MILLI);

  // Exactly the batches' transactions were sent, each item in exactly one batch, none failed.
  const batches = batchLines.flat();
  const sent = (await settlerTransactions(world)) - txBefore;
  expect(sent).toBe(batches.length);
  expect(new Set(statuses.map((s) => s.transaction))).toEqual(new Set(batches.map((b) => b['transaction'])));
  expect(batches.reduce((sum, b) => sum + Number(b['size']), 0)).toBe(PAYMENTS);
  expect(batches.every((b) => b['failed'] === 0 && b['settled'] === b['size'])).toBe(true);
  expect(sent).toBeGreaterThanOrEqual(2);
  expect(sent).toBeLessThanOrEqual(6);
  for (const r of replicas) expect(await metricValue(r.adminUrl, BAD_DEBT_CHEAP)).toBe(0);

  const rows = await replicas[0]!.ledger.receipts({ limit: 1000 });
  expect(rows).toHaveLength(PAYMENTS);
  expect(rows.filter((r) => r.status !== 'settled')).toEqual([]);
  expect(new Set(rows.map((r) => r.nonce)).size).toBe(PAYMENTS);
  expect(await querySql(databaseUrl, "SELECT 1 FROM receipts WHERE status = 'settle_failed'")).toEqual([]);
  // One lease for the key's batches, held by one replica at a time.
  const leases = await querySql<{ name: string }>(databaseUrl, `SELECT name FROM leases WHERE name LIKE 'batch:%'`);
  expect(leases).toEqual([{ name: `batch:8453:${BATCH_SETTLER.toLowerCase()}` }]);
}, 60_000);
