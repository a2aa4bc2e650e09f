/**
 * A payment settled through a facilitator whose answer never said it landed stays `pending`
 * until the chain decides it: the authorization reconciler reads the token's state of the
 * authorization and finishes the row. On a real chain, with the official facilitator behind a
 * front that loses its answers, and balances read on chain:
 *
 *   - the facilitator settled and its answer was lost: the row becomes `settled` with the
 *     transaction that used the authorization, the revenue is counted once, and the caller's
 *     retry with the same payment is served without a second charge;
 *   - the facilitator never settled: once the chain is past the authorization's validBefore, the
 *     row becomes `settle_failed` (`authorization_expired_unsettled`) and nothing moved.
 */
import { testActions } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, PAYEE, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { metricValue } from '../helpers/deferred.js';
import { startFakeFacilitator, startTestFacilitator, type FakeFacilitator, type RecordedRequest, type TestFacilitator } from '../helpers/facilitator.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const CENT = 10_000n;
const FACILITATOR_KEY = ANVIL_DEV_KEYS[3];
const REVENUE = 'x402_gateway_revenue_atomic_total{route="GET /paid",asset="usdc@base",network="eip155:8453"}';

let world: ChainWorld;
let upstream: TestUpstream;
let facilitator: TestFacilitator;
let front: FakeFacilitator;
let gw: RunningGateway;
/** What the front does with a `/settle`: pass it on and lose the answer, or drop it. */
let settleMode: 'settle-then-fail' | 'fail' = 'settle-then-fail';

async function forward(req: RecordedRequest): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${facilitator.url}${req.path}`, {
    method: req.method,
    headers: { 'content-type': 'application/json' },
    ...(req.method === 'GET' ? {} : { body: JSON.stringify(req.body) }),
  });
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  [world, upstream] = await Promise.all([startChainWorld(), startUpstream()]);
  facilitator = await startTestFacilitator({ rpcUrl: world.chain.rpcUrl, chainId: 8453, privateKey: FACILITATOR_KEY });
  front = await startFakeFacilitator(async (req) => {
    if (!req.path.endsWith('/settle')) return forward(req);
    if (settleMode === 'settle-then-fail') await forward(req);
    return { status: 502, body: { error: 'bad gateway' } };
  });
  gw = await startGateway(`${gatewayYamlHead({
    payTo: PAYEE,
    network: `base: { network: "eip155:8453", rpc: "${world.chain.rpcUrl}", settle: { mode: facilitator, url: "${front.url}", timeoutMs: 5000 } }`,
  })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /paid", price: "$0.01" }
`);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await front?.close();
  await facilitator?.close();
  await upstream?.close();
  await world?.stop();
});

async function signedHeader(): Promise<Record<string, string>> {
  const http = v2HttpClient();
  return http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${gw.url}/paid`)));
}

/**
 * A paid request whose settlement the front leaves unconfirmed: the caller gets a 402 (settlement
 * pending) and the ledger a `pending` row. Balances are those from before the request.
 */
async function payUnconfirmed(mode: typeof settleMode) {
  settleMode = mode;
  const header = await signedHeader();
  const before = await world.balances();
  const first = await send(gw.url, 'GET', '/paid', { headers: header });
  expect(first.status).toBe(402);
  const pending = await rowOf();
  if (pending === undefined) throw new Error('no pending row');
  return { header, before, pending };
}

/** The ledger's row of request `requestId`, or else the newest `pending` one. */
async function rowOf(requestId?: string) {
  const rows = await gw.ledger.receipts({ limit: 100 });
  return rows.find((r) => (requestId === undefined ? r.status === 'pending' : r.requestId === requestId));
}

describe('pending facilitator settlements, finished from the chain', () => {
  it('settled but the answer was lost: the row becomes settled with its transaction, counted once, and a retry is served free', async () => {
    const { header, before, pending } = await payUnconfirmed('settle-then-fail');
    // The money moved, though the gateway could not know it.
    const moved = await world.balances();
    expect(moved.payee - before.payee).toBe(CENT);
    expect(before.payer - moved.payer).toBe(CENT);

    await waitFor(async () => (await rowOf(pending.requestId))?.status === 'settled', 30_000, 250);
    const row = (await rowOf(pending.requestId))!;
    expect(row).toMatchObject({ status: 'settled', reason: 'reconciled', transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
    const receipt = await world.admin.getTransactionReceipt({ hash: row.transaction as `0x${string}` });
    expect(receipt.status).toBe('success');
    expect(await metricValue(gw.adminUrl, REVENUE)).toBe(Number(CENT));

    // The caller's retry with the same payment gets what it paid for, and pays nothing more.
    const retry = await send(gw.url, 'GET', '/paid', { headers: header });
    expect(retry.status).toBe(200);
    const after = await world.balances();
    expect(after).toEqual(moved);
  }, 60_000);

  it('never settled: past its validBefore on chain the row becomes settle_failed, and nothing moved', async () => {
    const { before, pending } = await payUnconfirmed('fail');
    // Still valid: the row waits (a facilitator could still submit it).
    await new Promise((resolve) => setTimeout(resolve, 9_000));
    expect((await rowOf(pending.requestId))?.status).toBe('pending');

    // The chain moves past validBefore (and the reorg margin).
    const test = testActions({ mode: 'anvil' })(world.admin);
    await test.increaseTime({ seconds: 3_600 });
    await test.mine({ blocks: 1 });
    await waitFor(async () => (await rowOf(pending.requestId))?.status === 'settle_failed', 30_000, 250);
    const row = (await rowOf(pending.requestId))!;
    expect(row).toMatchObject({ status: 'settle_failed', reason: 'authorization_expired_unsettled' });
    expect(await world.balances()).toEqual(before);
    expect(await metricValue(gw.adminUrl, REVENUE)).toBe(Number(CENT));
  }, 60_000);
});
