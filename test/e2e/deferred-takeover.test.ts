/**
 * `settlement: deferred`, a replica killed right after serving, on a PostgreSQL store: another
 * replica (started after the kill, so it never saw the requests) settles every authorization the
 * dead one queued, once the dead one's batch lease has run out. Real processes, a real chain,
 * balances on chain. The batch wait is far longer than the time from serving to the kill, and the
 * balances just after it show that nothing was settled before.
 */
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PAYEE, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { deferredBase, EXTRA_PAYER_KEYS, finalStatuses, fundPayers, MILLI, receiptOf, settlerTransactions, statusUrlOf } from '../helpers/deferred.js';
import { gatewayYamlHead } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { send } from '../helpers/http.js';
import { querySql, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const PAYERS = EXTRA_PAYER_KEYS.slice(0, 3);
const PAYER_ADDRESSES = PAYERS.map((key) => privateKeyToAccount(key).address);

let world: ChainWorld;
let upstream: TestUpstream;
let db: TestPostgres;
let databaseUrl: string;
const processes: GatewayProcess[] = [];

beforeAll(async () => {
  [world, upstream, db] = await Promise.all([startChainWorld(), startUpstream(), startPostgres()]);
  await fundPayers(world, PAYERS, 1_000_000n);
  databaseUrl = await db.newDatabase();
}, 90_000);

afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exited));
  await upstream?.close();
  await world?.stop();
  await db?.destroy();
});

async function startReplica(): Promise<GatewayProcess> {
  const replica = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, 'maxSize: 50, maxWaitMs: 8000'), port, adminPort })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
`,
    { ledger: `{ store: postgres, url: "${databaseUrl}", pool: 4 }` },
  );
  processes.push(replica);
  await waitFor(async () => (await send(replica.url, 'GET', '/cheap')).status === 402, 30_000, 50);
  return replica;
}

const balances = () => Promise.all([PAYEE, ...PAYER_ADDRESSES].map((a) => world.balance(a)));

it('a replica killed right after serving: another replica settles everything it queued, once', async () => {
  const victim = await startReplica();
  const before = await balances();
  const txBefore = await settlerTransactions(world);
  const receipts = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const res = await v2Fetch(PAYERS[i % PAYERS.length]!)(`${victim.url}/cheap`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      return receiptOf(res);
    }),
  );
  victim.child.kill('SIGKILL');
  await victim.exited;
  for (const r of receipts) expect(r).toMatchObject({ success: true, transaction: '', extra: { settlement: 'deferred' } });
  expect(await balances()).toEqual(before);

  const survivor = await startReplica();
  const statuses = await finalStatuses(receipts.map(statusUrlOf), 40_000, survivor.url);
  expect(statuses.map((s) => s.status)).toEqual(Array(6).fill('settled'));
  const after = await balances();
  expect(after.map((b, i) => (i === 0 ? b - before[i]! : before[i]! - b))).toEqual([6n * MILLI, 2n * MILLI, 2n * MILLI, 2n * MILLI]);
  expect((await settlerTransactions(world)) - txBefore).toBe(new Set(statuses.map((s) => s.transaction)).size);
  const rows = await querySql<{ status: string }>(databaseUrl, 'SELECT status FROM receipts');
  expect(rows.map((r) => r.status)).toEqual(Array(6).fill('settled'));
}, 90_000);
