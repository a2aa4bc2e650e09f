/**
 * `settlement: deferred` loses nothing when the process goes, on a real chain with balances on
 * chain, the gateway a real process (`src/main.ts start`) on a SQLite file:
 *
 *   - SIGKILL right after serving: nothing was settled; the process started again on the same
 *     file settles every queued authorization, and the status URLs say settled;
 *   - SIGTERM: the drain flushes the queue on chain before the process exits 0, within the grace.
 *
 * The batch waits are far longer than the time between serving and the signal, so only the
 * restart, or the drain, can have settled anything (and the balances before it say none did).
 */
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PAYEE, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { deferredBase, EXTRA_PAYER_KEYS, finalStatuses, fundPayers, MILLI, receiptOf, settlerTransactions, statusUrlOf, type PaymentReceipt } from '../helpers/deferred.js';
import { gatewayYamlHead } from '../helpers/gateway.js';
import { ledgerReceipts, startGatewayProcess, type GatewayProcess, type GatewayProcessOptions } from '../helpers/gateway-process.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const PAYERS = EXTRA_PAYER_KEYS.slice(0, 3);
const PAYER_ADDRESSES = PAYERS.map((key) => privateKeyToAccount(key).address);

let world: ChainWorld;
let upstream: TestUpstream;
const processes: GatewayProcess[] = [];

beforeAll(async () => {
  [world, upstream] = await Promise.all([startChainWorld(), startUpstream()]);
  await fundPayers(world, PAYERS, 1_000_000n);
});

afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exited));
  await upstream?.close();
  await world?.stop();
});

async function startDeferredGateway(maxWaitMs: number, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, `maxSize: 50, maxWaitMs: ${maxWaitMs}`), port, adminPort })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
shutdown: { graceMs: 20000 }
`,
    options,
  );
  processes.push(gateway);
  await waitFor(async () => (await send(gateway.url, 'GET', '/cheap')).status === 402, 30_000, 50);
  return gateway;
}

/** Six deferred payments, two per payer, through `gateway`: every receipt says queued. */
async function paySix(gateway: GatewayProcess): Promise<PaymentReceipt[]> {
  const receipts = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const res = await v2Fetch(PAYERS[i % PAYERS.length]!)(`${gateway.url}/cheap`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      return receiptOf(res);
    }),
  );
  for (const r of receipts) expect(r).toMatchObject({ success: true, transaction: '', extra: { settlement: 'deferred' } });
  return receipts;
}

const balances = () => Promise.all([PAYEE, ...PAYER_ADDRESSES].map((a) => world.balance(a)));
/** The payee's gain and each payer's loss since `before`. */
const movedSince = async (before: bigint[]) => (await balances()).map((b, i) => (i === 0 ? b - before[i]! : before[i]! - b));

it('SIGKILL right after serving: restarted on the same ledger file, every queued authorization is settled', async () => {
  const first = await startDeferredGateway(8_000);
  const before = await balances();
  const txBefore = await settlerTransactions(world);
  const receipts = await paySix(first);
  first.child.kill('SIGKILL');
  await first.exited;

  // Nothing was settled: the payments are owed only in the ledger file.
  expect(await movedSince(before)).toEqual([0n, 0n, 0n, 0n]);
  const kept = await ledgerReceipts(first.ledgerPath);
  expect(kept.map((r) => r.status)).toEqual(Array(6).fill('queued'));

  const second = await startDeferredGateway(8_000, { ledger: `{ path: "${first.ledgerPath}" }` });
  const statuses = await finalStatuses(receipts.map(statusUrlOf), 40_000, second.url);
  expect(statuses.map((s) => s.status)).toEqual(Array(6).fill('settled'));
  expect(await movedSince(before)).toEqual([6n * MILLI, 2n * MILLI, 2n * MILLI, 2n * MILLI]);
  const sent = (await settlerTransactions(world)) - txBefore;
  expect(sent).toBe(new Set(statuses.map((s) => s.transaction)).size);
  const rows = await ledgerReceipts(first.ledgerPath);
  expect(rows.map((r) => r.status)).toEqual(Array(6).fill('settled'));
  expect(new Set(rows.map((r) => r.nonce))).toEqual(new Set(kept.map((r) => r.nonce)));
  second.child.kill('SIGKILL');
  await second.exited;
}, 60_000);

it('SIGTERM drains: the queued payments are settled on chain before the process exits 0', async () => {
  const gateway = await startDeferredGateway(120_000, { captureOutput: true });
  const before = await balances();
  await paySix(gateway);
  expect(await movedSince(before)).toEqual([0n, 0n, 0n, 0n]);

  gateway.child.kill('SIGTERM');
  expect(await gateway.exited).toBe(0);
  expect(await movedSince(before)).toEqual([6n * MILLI, 2n * MILLI, 2n * MILLI, 2n * MILLI]);
  expect((await ledgerReceipts(gateway.ledgerPath)).map((r) => r.status)).toEqual(Array(6).fill('settled'));
  // Within the grace: the drain did not give up on any of them.
  expect(gateway.output.stdout).not.toContain('left queued at exit');
}, 60_000);
