/**
 * Regression, red-team finding "a transfer's hash is a bearer token": `X-Payment-Proof` accepted
 * any transfer to `payTo` from the last 24 h, first come first served, on every route. Whoever saw
 * a payer's hash (it is public from the mempool on) was served and the payer then got
 * `proof_already_used`; an unrelated $5 transfer to `payTo` bought a $0.05 request.
 *
 * Now the flow is off unless a route turns it on, the caller must hold the transaction sender's
 * signature over the hash and the resource URL, and a transfer counts for 15 minutes by default.
 * All through the running gateway on anvil, with balances read on chain and a record of what
 * reached the upstream and which chain reads the gateway made.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { erc20Abi, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, createDevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, mintTestUsdc } from '../../src/tools/devchain/token.js';
import { PROOF_TX_PLACEHOLDER, proofMessage } from '../../src/protocol/proof-message.js';
import type { RunningGateway } from '../../src/server.js';
import { realClock } from '../helpers/clock.js';
import { localSettlementBase, PAYEE, PAYER, PAYER_KEY, startChainWorld, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { send, type RawResponse } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const CENT = 10_000n;
/** Saw the payer's hash; holds no USDC and sends nothing. */
const ATTACKER_KEY = ANVIL_DEV_KEYS[3];
const ATTACKER = privateKeyToAccount(ATTACKER_KEY).address;
/** Someone unrelated who pays `payTo` $5 for reasons of its own. */
const BYSTANDER_KEY = ANVIL_DEV_KEYS[4];
const BYSTANDER = privateKeyToAccount(BYSTANDER_KEY).address;

/** JSON-RPC in front of anvil that counts the methods the gateway calls. */
interface RecordingRpc {
  readonly url: string;
  count(method: string): number;
  close(): Promise<void>;
}

async function startRecordingRpc(target: string): Promise<RecordingRpc> {
  const methods: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = JSON.parse(body) as { method: string } | { method: string }[];
      for (const call of Array.isArray(parsed) ? parsed : [parsed]) methods.push(call.method);
      fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        .then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': 'application/json' });
          res.end(await answer.text());
        })
        .catch(() => {
          res.writeHead(502);
          res.end();
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    count: (method) => methods.filter((m) => m === method).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let world: ChainWorld;
let upstream: TestUpstream;
let rpc: RecordingRpc;
let gw: RunningGateway;
/** The gateway's clock: the real one, run ahead by one test. */
const clock = realClock();

beforeAll(async () => {
  world = await startChainWorld();
  await mintTestUsdc(world.admin, { token: BASE_USDC, to: BYSTANDER, amount: 10_000_000n });
  upstream = await startUpstream();
  rpc = await startRecordingRpc(world.chain.rpcUrl);
  // No `proof` key anywhere but on /report: the default must be off.
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(rpc.url) })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /report", price: "$0.05", proof: true }
  - { match: "GET /plain", price: "$0.05" }
`,
    { clock },
  );
});

afterAll(async () => {
  await gw?.close();
  await rpc?.close();
  await upstream?.close();
  await world?.stop();
});

async function transfer(key: Hex, amount: bigint): Promise<Hex> {
  const sender = createDevChainClient(world.chain, key);
  const hash = await sender.writeContract({ address: BASE_USDC, abi: erc20Abi, functionName: 'transfer', args: [PAYEE, amount] });
  await sender.waitForTransactionReceipt({ hash });
  return hash;
}

/** The proof headers for `hash`, signed by `key` over the message for `path` (default: the path requested). */
async function proofHeaders(hash: Hex, key: Hex, path: string): Promise<Record<string, string>> {
  const signature = await privateKeyToAccount(key).signMessage({ message: proofMessage(hash, `${gw.url}${path}`) });
  return { 'x-payment-proof': hash, 'x-payment-proof-signature': signature };
}

function errorOf(res: RawResponse): string {
  return (res.json() as { error: string }).error;
}

describe('a transfer hash is not a bearer token', () => {
  it('is off unless the route turns it on: the proof header gets the ordinary challenge, unread and unspent', async () => {
    let hash: Hex = '0x';
    const delta = await world.moved(async () => {
      hash = await transfer(PAYER_KEY, 5n * CENT);
      const seen = upstream.seen.length;
      const receiptsRead = rpc.count('eth_getTransactionReceipt');
      const t0 = Date.now();
      const res = await send(gw.url, 'GET', '/plain', { headers: await proofHeaders(hash, PAYER_KEY, '/plain') });
      expect(res.status).toBe(402);
      expect(errorOf(res)).toBe('proof_not_enabled');
      expect(res.headers['payment-required']).toEqual(expect.any(String));
      expect(res.headers['x-payment-proof-message']).toBeUndefined();
      expect(upstream.seen.length).toBe(seen);
      expect(rpc.count('eth_getTransactionReceipt')).toBe(receiptsRead);
      expect(await gw.ledger.receipts({ since: t0 })).toEqual([]);
      // Not spent: the same hash still buys its one request where proofs are on.
      const served = await send(gw.url, 'GET', '/report', { headers: await proofHeaders(hash, PAYER_KEY, '/report') });
      expect(served.status).toBe(200);
      expect(upstream.seen.length).toBe(seen + 1);
    });
    expect(delta).toEqual({ payer: -5n * CENT, payee: 5n * CENT });
  });

  it("refuses an attacker holding the payer's hash, with no signature or its own, and then serves the payer", async () => {
    const t0 = Date.now();
    let hash: Hex = '0x';
    const seen = upstream.seen.length;
    const delta = await world.moved(async () => {
      hash = await transfer(PAYER_KEY, 5n * CENT);
      const bare = await send(gw.url, 'GET', '/report', { headers: { 'x-payment-proof': hash } });
      expect(bare.status).toBe(402);
      expect(errorOf(bare)).toBe('proof_signature_required');
      const own = await send(gw.url, 'GET', '/report', { headers: await proofHeaders(hash, ATTACKER_KEY, '/report') });
      expect(own.status).toBe(402);
      expect(errorOf(own)).toBe('proof_signature_mismatch');
      // The payer's own signature, but for another resource: not a pass for this one.
      const elsewhere = await send(gw.url, 'GET', '/report?copy=1', { headers: await proofHeaders(hash, PAYER_KEY, '/report') });
      expect(elsewhere.status).toBe(402);
      expect(errorOf(elsewhere)).toBe('proof_signature_mismatch');
      expect(upstream.seen.length).toBe(seen);

      const payer = await send(gw.url, 'GET', '/report', { headers: await proofHeaders(hash, PAYER_KEY, '/report') });
      expect(payer.status).toBe(200);
    });
    // One transfer on chain, one request upstream.
    expect(delta).toEqual({ payer: -5n * CENT, payee: 5n * CENT });
    expect(upstream.seen.length).toBe(seen + 1);
    const rows = (await gw.ledger.receipts({ since: t0 })).reverse();
    expect(rows.map((r) => [r.status, r.reason, r.payer, r.transaction])).toEqual([
      ['proof_refused', 'proof_signature_mismatch', ATTACKER, hash],
      ['proof_refused', 'proof_signature_mismatch', expect.any(String), hash],
      ['proof_accepted', '', PAYER, hash],
    ]);
  });

  it('does not let an unrelated $5 transfer to payTo buy a request for a caller who did not send it', async () => {
    const seen = upstream.seen.length;
    const before = await world.balance(BYSTANDER);
    const hash = await transfer(BYSTANDER_KEY, 500n * CENT);
    const payeeBefore = (await world.balances()).payee;
    const bare = await send(gw.url, 'GET', '/report', { headers: { 'x-payment-proof': hash } });
    expect(bare.status).toBe(402);
    expect(errorOf(bare)).toBe('proof_signature_required');
    const caller = await send(gw.url, 'GET', '/report', { headers: await proofHeaders(hash, PAYER_KEY, '/report') });
    expect(caller.status).toBe(402);
    expect(errorOf(caller)).toBe('proof_signature_mismatch');
    expect(upstream.seen.length).toBe(seen);
    // It stays the bystander's to use, and buys exactly one request.
    const bystander = await send(gw.url, 'GET', '/report', { headers: await proofHeaders(hash, BYSTANDER_KEY, '/report') });
    expect(bystander.status).toBe(200);
    expect(upstream.seen.length).toBe(seen + 1);
    expect(await world.balance(BYSTANDER)).toBe(before - 500n * CENT);
    expect((await world.balances()).payee).toBe(payeeBefore);
  });

  it('refuses a transfer older than the 15-minute default age, by the gateway clock, and spends nothing', async () => {
    const hash = await transfer(PAYER_KEY, 5n * CENT);
    const headers = await proofHeaders(hash, PAYER_KEY, '/report');
    const seen = upstream.seen.length;
    try {
      clock.setMs(Date.now() + 16 * 60_000);
      const old = await send(gw.url, 'GET', '/report', { headers });
      expect(old.status).toBe(402);
      expect(errorOf(old)).toBe('proof_too_old');
      expect(upstream.seen.length).toBe(seen);
      clock.setMs(Date.now() + 14 * 60_000);
      const fresh = await send(gw.url, 'GET', '/report', { headers });
      expect(fresh.status).toBe(200);
      expect(upstream.seen.length).toBe(seen + 1);
    } finally {
      clock.setMs(Date.now());
    }
  });

  it('shows the message to sign in the 402 of a proof route, exposed to browsers, and a client that follows it is served', async () => {
    const challenge = await send(gw.url, 'GET', '/report?day=1', { headers: { origin: 'https://app.example.com' } });
    expect(challenge.status).toBe(402);
    const resource = (challenge.json() as { accepts: { resource: string }[] }).accepts[0]?.resource;
    expect(resource).toBe(`${gw.url}/report?day=1`);
    const template = challenge.headers['x-payment-proof-message'];
    expect(template).toBe(`x402 payment proof: transaction <tx hash> for ${gw.url}/report?day=1`);
    expect(String(challenge.headers['access-control-expose-headers']).split(/,\s*/)).toContain('X-Payment-Proof-Message');
    const plain = await send(gw.url, 'GET', '/plain');
    expect(plain.status).toBe(402);
    expect(plain.headers['x-payment-proof-message']).toBeUndefined();

    const delta = await world.moved(async () => {
      const hash = await transfer(PAYER_KEY, 5n * CENT);
      const message = String(template).replace(PROOF_TX_PLACEHOLDER, hash);
      const signature = await privateKeyToAccount(PAYER_KEY).signMessage({ message });
      const paid = await send(gw.url, 'GET', '/report?day=1', { headers: { 'x-payment-proof': hash, 'x-payment-proof-signature': signature } });
      expect(paid.status).toBe(200);
    });
    expect(delta).toEqual({ payer: -5n * CENT, payee: 5n * CENT });
  });
});
