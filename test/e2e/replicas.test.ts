/**
 * Many replicas, one settler key, one PostgreSQL store, a real chain: three gateway processes
 * (`src/main.ts start`) share the store and the key. Every case checks balances on chain.
 *
 *   - 30 copies of one authorization spread over the replicas: served once, charged once;
 *   - 45 distinct payments at once, 15 per replica: all served, each charged once, no nonce
 *     error (the nonces come from the store), and `receipts` on any replica's config lists them;
 *   - a replica killed while its settlement waits in the mempool: the same header presented to
 *     another replica hears `settlement_pending` (no new challenge), a live replica reconciles
 *     the row to `settled` within 15 s of the block, and the header is then served, free;
 *   - a logged settlement dropped from the mempool, its replica killed: the reconciler sends it
 *     again, it is mined, and later payments on the key are not stalled;
 *   - PostgreSQL stopped: priced routes 503 and nothing is charged, free routes 200; started
 *     again: paid traffic recovers.
 */
import { testActions } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import type { Receipt } from '../../src/payments/ports.js';
import { challengeOf, localSettlementBase, PAYEE, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/** "$0.01" in USDC's atomic units. */
const PRICE = 10_000n;

let world: ChainWorld;
let upstream: TestUpstream;
let db: TestPostgres;
let databaseUrl: string;
const replicas: GatewayProcess[] = [];

async function startReplica(): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl, ', receiptTimeoutMs: 3000'), port, adminPort })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /health", price: free }
`,
    { ledger: `{ store: postgres, url: "${databaseUrl}", pool: 4 }` },
  );
  replicas.push(gateway);
  await waitFor(async () => (await send(gateway.url, 'GET', '/weather').catch(() => ({ status: 0 }))).status === 402, 30_000, 50);
  return gateway;
}

/** Every receipt row, newest first, through the `receipts` command on `replica`'s config. */
async function receiptsVia(replica: GatewayProcess): Promise<Receipt[]> {
  const out: string[] = [];
  const io: CliIo = { out: (line) => out.push(line), err: () => {}, onSignal: () => {}, env: {} };
  expect(await runCli(['receipts', '--config', replica.configPath, '--json', '--limit', '10000'], io)).toBe(0);
  return JSON.parse(out.join('\n')) as Receipt[];
}

/** A payment header for one fresh authorization of PAYER, for `/weather` at `url`. */
async function paymentFor(url: string): Promise<Record<string, string>> {
  const http = v2HttpClient();
  return http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${url}/weather`)));
}

const RECONCILED_METRIC = 'x402_gateway_settlements_total{outcome="settled",mode="reconciler"}';
const REVENUE_METRIC = 'x402_gateway_revenue_atomic_total{route="GET /weather",asset="usdc@base",network="eip155:8453"}';

/** A metric's value summed over `of`'s /metrics (0 where a replica has none). */
async function metricTotal(of: readonly GatewayProcess[], series: string): Promise<number> {
  const texts = await Promise.all(of.map(async (r) => (await send(r.adminUrl, 'GET', '/metrics')).text()));
  const line = (text: string) => text.split('\n').find((l) => l.startsWith(`${series} `));
  return texts.reduce((sum, text) => sum + Number(line(text)?.slice(series.length + 1) ?? 0), 0);
}

async function kill(replica: GatewayProcess): Promise<void> {
  replica.child.kill('SIGKILL');
  await replica.exited;
  replicas.splice(replicas.indexOf(replica), 1);
}

beforeAll(async () => {
  [world, upstream, db] = await Promise.all([startChainWorld(), startUpstream(), startPostgres()]);
  databaseUrl = await db.newDatabase();
  // One at a time: the first migrates the schema (the others would wait on its lock anyway).
  for (let i = 0; i < 3; i++) await startReplica();
}, 120_000);

afterAll(async () => {
  for (const replica of replicas) replica.child.kill('SIGKILL');
  await Promise.all(replicas.map((r) => r.exited));
  await upstream?.close();
  await world?.stop();
  await db?.destroy();
});

describe('three replicas, one key, one store', () => {
  it('30 copies of one authorization over the replicas: one served, charged once', async () => {
    const header = await paymentFor(replicas[0]!.url);
    const seen = upstream.seen.length;
    let statuses: number[] = [];
    const moved = await world.moved(async () => {
      statuses = (await Promise.all(Array.from({ length: 30 }, (_, i) => send(replicas[i % 3]!.url, 'GET', '/weather', { headers: header })))).map((r) => r.status);
    });
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 402)).toHaveLength(29);
    expect(upstream.seen.length - seen).toBe(1);
    expect(moved).toEqual({ payer: -PRICE, payee: PRICE });
  });

  it('45 distinct payments at once, 15 per replica: all served, each charged once, no nonce error; receipts lists them on any replica', async () => {
    const headers = await Promise.all(Array.from({ length: 45 }, () => paymentFor(replicas[0]!.url)));
    let answers: { status: number; body: string }[] = [];
    const moved = await world.moved(async () => {
      answers = (await Promise.all(headers.map((h, i) => send(replicas[i % 3]!.url, 'GET', '/weather', { headers: h })))).map((r) => ({ status: r.status, body: r.text() }));
    });
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(moved).toEqual({ payer: -45n * PRICE, payee: 45n * PRICE });
    const nonces = new Set(headers.map((h) => (JSON.parse(Buffer.from(Object.values(h)[0]!, 'base64').toString()) as { payload: { authorization: { nonce: string } } }).payload.authorization.nonce));
    for (const replica of replicas) {
      const settled = (await receiptsVia(replica)).filter((r) => r.status === 'settled' && nonces.has(r.nonce));
      expect(settled).toHaveLength(45);
      expect(new Set(settled.map((r) => r.transaction)).size).toBe(45);
    }
  });

  it('a replica killed while its settlement waits in the mempool: the header presented elsewhere hears settlement_pending, a live replica reconciles within 15 s, then serves it free', async () => {
    const test = testActions({ mode: 'anvil' })(world.admin);
    const [victim, other, third] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    const header = await paymentFor(victim.url);
    const before = await world.balances();
    const seen = upstream.seen.length;
    const revenueBefore = await metricTotal([other, third], REVENUE_METRIC);
    await test.setAutomine(false);
    let hash: string | undefined;
    try {
      void send(victim.url, 'GET', '/weather', { headers: header }).catch(() => undefined);
      await waitFor(async () => (await world.admin.getBlock({ blockTag: 'pending' })).transactions.length > 0, 20_000, 20);
      await kill(victim);
      // Unconfirmed: the re-presentation waits out the settlement wait, then is told to come
      // back, with the transaction, and no requirements to sign a second payment against.
      const early = await send(other.url, 'GET', '/weather', { headers: header });
      expect(early.status).toBe(402);
      expect(Number(early.headers['retry-after'])).toBeGreaterThan(0);
      expect(early.headers['payment-required']).toBeUndefined();
      expect(early.json()).toMatchObject({ error: 'settlement_pending', accepts: [] });
      hash = (early.json() as { transaction: string }).transaction;
      expect((await world.admin.getBlock({ blockTag: 'pending' })).transactions).toEqual([hash]);
      await test.mine({ blocks: 1 });
    } finally {
      await test.setAutomine(true);
    }
    const mined = Date.now();
    let row: Receipt | undefined;
    await waitFor(async () => {
      row = (await receiptsVia(other)).find((r) => r.transaction === hash && r.reason === 'reconciled');
      return row !== undefined;
    }, 15_000, 200);
    expect(Date.now() - mined).toBeLessThan(15_000);
    expect(row).toMatchObject({ status: 'settled', amount: PRICE.toString() });
    // Whichever replica held the lease counted it, with its revenue; no row is left pending.
    expect(await metricTotal([other, third], RECONCILED_METRIC)).toBe(1);
    expect((await metricTotal([other, third], REVENUE_METRIC)) - revenueBefore).toBe(Number(PRICE));
    expect(await metricTotal([other, third], 'x402_gateway_pending_settlements')).toBe(0);

    // The caller never got its answer: the same header, at another replica, is served, free.
    const served = await send(third.url, 'GET', '/weather', { headers: header });
    expect(served.status).toBe(200);
    expect(decodeHeader(served.headers['payment-response'])).toMatchObject({ success: true, transaction: hash });
    expect(upstream.seen.length - seen).toBe(2); // the killed replica forwarded it once, the re-delivery once
    expect(await world.balances()).toEqual({ payer: before.payer - PRICE, payee: before.payee + PRICE });
    // Delivered whole: from now on the header is a replay.
    expect((await send(other.url, 'GET', '/weather', { headers: header })).status).toBe(402);
    await startReplica();
  });

  it('a logged settlement dropped from the mempool, its replica killed: sent again and mined; later payments are not stalled', async () => {
    const test = testActions({ mode: 'anvil' })(world.admin);
    const victim = replicas[0]!;
    const header = await paymentFor(victim.url);
    const before = await world.balances();
    const reconciledBefore = (await receiptsVia(replicas[1]!)).filter((r) => r.reason === 'reconciled').length;
    await test.setAutomine(false);
    try {
      void send(victim.url, 'GET', '/weather', { headers: header }).catch(() => undefined);
      await waitFor(async () => (await world.admin.getBlock({ blockTag: 'pending' })).transactions.length > 0, 20_000, 20);
      await kill(victim);
      await world.admin.request({ method: 'anvil_dropAllTransactions' as never, params: [] as never });
      expect((await world.admin.getBlock({ blockTag: 'pending' })).transactions).toHaveLength(0);
    } finally {
      await test.setAutomine(true);
    }
    await waitFor(async () => (await receiptsVia(replicas[0]!)).filter((r) => r.reason === 'reconciled').length > reconciledBefore, 30_000, 200);
    expect(await world.balances()).toEqual({ payer: before.payer - PRICE, payee: before.payee + PRICE });

    const later = await world.moved(async () => {
      const paid = await send(replicas[1]!.url, 'GET', '/weather', { headers: await paymentFor(replicas[1]!.url) });
      expect(paid.status).toBe(200);
    });
    expect(later).toEqual({ payer: -PRICE, payee: PRICE });
    await startReplica();
  });

  it('PostgreSQL stopped: priced routes 503 and charge nothing, free routes 200; started again: paid traffic recovers', async () => {
    const replica = replicas[0]!;
    const header = await paymentFor(replica.url);
    await db.stop();
    try {
      const moved = await world.moved(async () => {
        const refused = await send(replica.url, 'GET', '/weather', { headers: header });
        expect(refused.status).toBe(503);
        expect(refused.json()).toMatchObject({ code: 'GW_ERR_LEDGER_UNAVAILABLE' });
        expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
        expect((await send(replica.url, 'GET', '/health')).status).toBe(200);
      });
      expect(moved).toEqual({ payer: 0n, payee: 0n });
    } finally {
      await db.start();
    }
    const moved = await world.moved(async () => {
      expect((await send(replica.url, 'GET', '/weather', { headers: header })).status).toBe(200);
    });
    expect(moved).toEqual({ payer: -PRICE, payee: PRICE });
  });
});
