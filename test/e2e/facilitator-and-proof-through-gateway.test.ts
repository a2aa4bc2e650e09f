/**
 * The gateway's two other ways of taking money, on a real chain: settlement by an x402
 * facilitator built from the official packages (with fallback past a dead one), and the seed's
 * X-Payment-Proof flow (a plain transfer, signed for by its sender, accepted once).
 */
import { erc20Abi, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC } from '../../src/tools/devchain/token.js';
import type { RunningGateway } from '../../src/server.js';
import { localSettlementBase, PAYEE, PAYER, PAYER_KEY, SETTLER_KEY, startChainWorld, v1Fetch, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';
import { proofMessage } from '../../src/protocol/proof-message.js';

const CENT = 10_000n;

let world: ChainWorld;
let upstream: TestUpstream;
let facilitator: TestFacilitator;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  facilitator = await startTestFacilitator({ rpcUrl: world.chain.rpcUrl, chainId: 8453, privateKey: SETTLER_KEY });
});

afterAll(async () => {
  await facilitator?.close();
  await upstream?.close();
  await world?.stop();
});

describe('settle: facilitator', () => {
  let gw: RunningGateway;
  let dead: string;

  beforeAll(async () => {
    dead = await closedLoopbackUrl();
    gw = await startGateway(`${gatewayYamlHead({
      payTo: PAYEE,
      network: `base: { network: "eip155:8453", settle: { mode: facilitator, url: "${dead}", timeoutMs: 2000, fallbacks: [{ url: "${facilitator.url}" }] } }`,
    })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('verifies and settles through the facilitator, past a dead first one, for v2 and v1 clients', async () => {
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const v2 = await v2Fetch()(`${gw.url}/weather`);
      expect(v2.status).toBe(200);
      expect(decodeHeader(v2.headers.get('payment-response') ?? undefined)).toMatchObject({ success: true, network: 'eip155:8453' });
      const v1 = await (await v1Fetch())(`${gw.url}/weather`);
      expect(v1.status).toBe(200);
      expect(decodeHeader(v1.headers.get('x-payment-response') ?? undefined)).toMatchObject({ success: true, network: 'base' });
    });
    expect(delta).toEqual({ payer: -2n * CENT, payee: 2n * CENT });
    const paths = facilitator.requests.map((r) => r.path);
    expect(paths.filter((p) => p === '/verify').length).toBeGreaterThanOrEqual(2);
    expect(paths.filter((p) => p === '/settle').length).toBe(2);
    const rows = await gw.ledger.receipts({ since: t0 });
    expect(rows.map((r) => r.status)).toEqual(['settled', 'settled']);
  });

  it('with every facilitator down: 502, nothing forwarded, nothing charged', async () => {
    const down = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: `base: { network: "eip155:8453", settle: { mode: facilitator, url: "${dead}", timeoutMs: 1000 } }` })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`);
    try {
      const before = upstream.seen.length;
      const delta = await world.moved(async () => {
        const res = await v2Fetch()(`${down.url}/weather`);
        expect(res.status).toBe(502);
        expect(await res.json()).toMatchObject({ code: 'GW_ERR_FACILITATOR_UNAVAILABLE' });
      });
      expect(delta).toEqual({ payer: 0n, payee: 0n });
      expect(upstream.seen.length).toBe(before);
    } finally {
      await down.close();
    }
  });
});

describe('X-Payment-Proof: a plain on-chain transfer buys one request', () => {
  let gw: RunningGateway;

  beforeAll(async () => {
    gw = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl) })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /report", price: "$0.05", proof: true }
`);
  });

  afterAll(async () => {
    await gw?.close();
  });

  /** The proof headers for `hash` on GET /report, signed by `key` (by default the payer, the sender of `transfer`). */
  async function proof(hash: string, key: Hex = PAYER_KEY): Promise<Record<string, string>> {
    const signature = await privateKeyToAccount(key).signMessage({ message: proofMessage(hash as Hex, `${gw.url}/report`) });
    return { 'x-payment-proof': hash, 'x-payment-proof-signature': signature };
  }

  async function transfer(to: `0x${string}`, amount: bigint): Promise<`0x${string}`> {
    const payer = createDevChainClient(world.chain, PAYER_KEY);
    const hash = await payer.writeContract({ address: BASE_USDC, abi: erc20Abi, functionName: 'transfer', args: [to, amount] });
    await payer.waitForTransactionReceipt({ hash });
    return hash;
  }

  it('accepts a transfer of at least the price once, and refuses its reuse', async () => {
    const hash = await transfer(PAYEE, 5n * CENT);
    const before = upstream.seen.length;
    const t0 = Date.now();
    const first = await send(gw.url, 'GET', '/report', { headers: await proof(hash) });
    expect(first.status).toBe(200);
    expect(upstream.seen.length - before).toBe(1);
    expect(upstream.seen.at(-1)?.headers['x-payment-proof']).toBeUndefined();
    const reuse = await send(gw.url, 'GET', '/report', { headers: await proof(hash) });
    expect(reuse.status).toBe(402);
    expect((reuse.json() as { error: string }).error).toBe('proof_already_used');
    expect(upstream.seen.length - before).toBe(1);
    const rows = (await gw.ledger.receipts({ since: t0 })).reverse();
    expect(rows.map((r) => [r.status, r.payer, r.transaction])).toEqual([
      ['proof_accepted', PAYER, hash],
      ['proof_refused', PAYER, hash],
    ]);
  });

  it('refuses a settlement transaction as proof: one payment never buys two requests', async () => {
    let settlement = '';
    const paidOnce = await world.moved(async () => {
      const paid = await v2Fetch()(`${gw.url}/report`);
      expect(paid.status).toBe(200);
      settlement = (decodeHeader(paid.headers.get('payment-response') ?? undefined) as { transaction: string }).transaction;
    });
    expect(paidOnce).toEqual({ payer: -5n * CENT, payee: 5n * CENT });
    const before = upstream.seen.length;
    // The payer did not send the settlement transaction, so its signature cannot claim it...
    const byPayer = await send(gw.url, 'GET', '/report', { headers: await proof(settlement) });
    expect(byPayer.status).toBe(402);
    expect((byPayer.json() as { error: string }).error).toBe('proof_signature_mismatch');
    // ...and even the settler, who did, finds no transfer from its own balance in it.
    const reuse = await send(gw.url, 'GET', '/report', { headers: await proof(settlement, SETTLER_KEY) });
    expect(reuse.status).toBe(402);
    expect((reuse.json() as { error: string }).error).toBe('proof_transfer_not_found');
    expect(upstream.seen.length).toBe(before);
  });

  it('refuses a transfer that is too small or to someone else, and a malformed hash', async () => {
    const small = await transfer(PAYEE, CENT);
    const elsewhere = await transfer(PAYER, 5n * CENT);
    const before = upstream.seen.length;
    const tooSmall = await send(gw.url, 'GET', '/report', { headers: await proof(small) });
    expect(tooSmall.status).toBe(402);
    expect((tooSmall.json() as { error: string }).error).toBe('proof_amount_too_low');
    const wrong = await send(gw.url, 'GET', '/report', { headers: await proof(elsewhere) });
    expect(wrong.status).toBe(402);
    expect((wrong.json() as { error: string }).error).toBe('proof_transfer_not_found');
    const unknown = await send(gw.url, 'GET', '/report', { headers: await proof(`0x${'12'.repeat(32)}`) });
    expect(unknown.status).toBe(402);
    expect((unknown.json() as { error: string }).error).toBe('proof_tx_not_found');
    const malformed = await send(gw.url, 'GET', '/report', { headers: { ...(await proof(small)), 'x-payment-proof': '0x1234' } });
    expect(malformed.status).toBe(400);
    expect(malformed.json()).toMatchObject({ code: 'GW_ERR_PROOF_MALFORMED' });
    const badSignature = await send(gw.url, 'GET', '/report', { headers: { 'x-payment-proof': small, 'x-payment-proof-signature': '0x1234' } });
    expect(badSignature.status).toBe(400);
    expect(badSignature.json()).toMatchObject({ code: 'GW_ERR_PROOF_SIGNATURE_MALFORMED' });
    expect(upstream.seen.length).toBe(before);
  });
});
