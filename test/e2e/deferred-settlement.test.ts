/**
 * `settlement: deferred` through the running gateway, paid by the official v2 and v1 clients on
 * a real chain (the token at Base's USDC address, our Multicall3 at the canonical address): the
 * answer comes at once with a receipt that says "accepted, queued"; the status URL goes from
 * queued to settled; the batch moves exactly the money on chain. An upstream failure queues and
 * charges nothing; past the exposure cap a payment settles at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { localSettlementBase, PAYEE, PAYER, startChainWorld, v1Fetch, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { decodeHeader } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const MILLI = 1_000n; // $0.001 in USDC atomic units

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  gw = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl, ', batch: { maxWaitMs: 2000 }') })}
upstreams:
  api: { url: "${upstream.url}" }
defaults:
  deferred: { maxUnsettledPerPayer: "$0.005" }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
  - { match: "GET /cheap/status/:code", price: "$0.001", settlement: deferred }
`);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

async function statusOf(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as Record<string, unknown>;
}

describe('settlement: deferred', () => {
  for (const client of ['v2', 'v1'] as const) {
    it(`the official ${client} client is served at once with an "accepted, queued" receipt; the batch then settles it on chain`, async () => {
      const pay = client === 'v2' ? v2Fetch() : await v1Fetch();
      const before = await world.balances();
      const res = await pay(`${gw.url}/cheap?client=${client}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ url: `/cheap?client=${client}` });
      const receipt = decodeHeader(res.headers.get(client === 'v2' ? 'payment-response' : 'x-payment-response') ?? undefined) as Record<string, any>;
      expect(receipt).toMatchObject({ success: true, transaction: '', payer: PAYER, extra: { settlement: 'deferred' } });
      expect(receipt['extra'].status).toBe(`${gw.url}/.well-known/x402/settlements/${receipt['extra'].id}`);

      await waitFor(async () => (await statusOf(receipt['extra'].status))['status'] === 'settled', 15_000, 100);
      const status = await statusOf(receipt['extra'].status);
      expect(status).toMatchObject({ id: receipt['extra'].id, status: 'settled' });
      expect(status['transaction']).toMatch(/^0x[0-9a-f]{64}$/);
      const after = await world.balances();
      expect({ payer: after.payer - before.payer, payee: after.payee - before.payee }).toEqual({ payer: -MILLI, payee: MILLI });
      const rows = (await gw.ledger.receipts({ limit: 10 })).filter((r) => r.path === `/cheap?client=${client}` || r.path === '/cheap');
      expect(rows[0]).toMatchObject({ status: 'settled', transaction: status['transaction'] });
    }, 60_000);
  }

  it('an upstream failure queues nothing and charges nothing', async () => {
    const before = await world.balances();
    const res = await v2Fetch()(`${gw.url}/cheap/status/500`);
    expect(res.status).toBe(500);
    expect(res.headers.get('payment-response')).toBeNull();
    expect(await world.balances()).toEqual(before);
    expect((await gw.ledger.queueStats()).count).toBe(0);
    expect((await gw.ledger.receipts({ limit: 1 }))[0]).toMatchObject({ status: 'not_charged' });
  }, 60_000);

  it('past the per-payer cap a payment settles at once (a transaction hash in its receipt); under it, queued', async () => {
    // All seven arrive well inside one batch wait (2 s): the queue fills to the cap, the rest settle at once.
    const pay = v2Fetch();
    const receipts: Record<string, any>[] = [];
    await Promise.all(
      Array.from({ length: 7 }, async () => {
        const res = await pay(`${gw.url}/cheap`);
        expect(res.status).toBe(200);
        receipts.push(decodeHeader(res.headers.get('payment-response') ?? undefined) as Record<string, any>);
      }),
    );
    const queued = receipts.filter((r) => r['transaction'] === '');
    const synchronous = receipts.filter((r) => r['transaction'] !== '');
    expect(queued.length).toBeGreaterThan(0);
    expect(queued.length).toBeLessThanOrEqual(5); // $0.005 at $0.001
    for (const r of synchronous) expect(r['transaction']).toMatch(/^0x[0-9a-f]{64}$/);
    expect(queued.length + synchronous.length).toBe(7);
    await waitFor(async () => (await gw.ledger.queueStats()).count === 0, 15_000, 100);
  }, 60_000);

  it('an unknown or malformed settlement id is a 404, never a lookup of something else', async () => {
    expect((await fetch(`${gw.url}/.well-known/x402/settlements/AAAAAAAAAAAAAAAAAAAAAA`)).status).toBe(404);
    expect((await fetch(`${gw.url}/.well-known/x402/settlements/%27%20or%201=1`)).status).toBe(404);
  });
});
