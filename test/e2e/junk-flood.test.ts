/**
 * What junk costs the operator. One client sends, within seconds, 600 well-formed payments with
 * valid signatures from a wallet that holds no USDC, each with a fresh nonce, and 200 garbage
 * headers; every JSON-RPC call the gateway makes is counted by a proxy in front of anvil. The
 * flood must cost at most 80 calls in all (it cost 1,800 before the failed-payment limits, the
 * payer caches and Multicall3), every answer is a 400, 402 or 429 with a stable code, nothing
 * is forwarded, no money moves, and a real payer from another address is served at once.
 */
import { x402Client } from '@x402/core/client';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment } from '@x402/fetch';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, localSettlementBase, PAYEE, PAYER, PAYER_KEY, startChainWorld, UNFUNDED_KEY, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { send, type RawResponse } from '../helpers/http.js';
import { startRpcProxy, type RpcProxy } from '../helpers/rpc-proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const CENT = 10_000n;
const VALID_BUT_UNFUNDED = 600;
const GARBAGE = 200;
const CONCURRENCY = 8;

/** A fetch for the official client that connects from `localAddress` (another client address). */
function fromAddress(localAddress: string): typeof fetch {
  return ((input: Request) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input.url);
      const req = httpRequest(
        { hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: input.method, headers: Object.fromEntries(input.headers), localAddress },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
          });
        },
      );
      req.on('error', reject);
      req.end();
    })) as unknown as typeof fetch;
}

/** Runs `tasks` with at most `limit` at once. */
async function pooled<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await (tasks[i] as () => Promise<T>)();
      }
    }),
  );
  return results;
}

let world: ChainWorld;
let rpc: RpcProxy;
let upstream: TestUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  world = await startChainWorld();
  // Counts every JSON-RPC call the gateway makes (each call of a batch).
  rpc = await startRpcProxy({ target: world.chain.rpcUrl, secretTarget: '/' });
  upstream = await startUpstream();
  gw = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(rpc.url) })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`);
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await rpc?.close();
  await world?.stop();
});

describe('a flood of junk payments from one client', () => {
  it('costs at most 80 JSON-RPC calls, answers each with a stable 400/402/429, forwards and moves nothing; a real payer elsewhere is served', async () => {
    const http = v2HttpClient(UNFUNDED_KEY);
    const challenge = await challengeOf(http, `${gw.url}/weather`);
    const headers: Record<string, string>[] = [];
    for (let i = 0; i < VALID_BUT_UNFUNDED; i++) headers.push(http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge)));
    for (let i = 0; i < GARBAGE; i++) {
      const junk = i % 2 === 0 ? randomBytes(64 + (i % 300)).toString('base64') : Buffer.from(JSON.stringify({ x402Version: 2, payload: i })).toString('base64');
      headers.splice((i * 4) % headers.length, 0, i % 3 === 0 ? { 'X-PAYMENT': junk } : { 'PAYMENT-SIGNATURE': junk });
    }
    const seen = upstream.seen.length;
    const balancesBefore = await world.balances();
    const callsBefore = rpc.methods.length;
    const t0 = Date.now();

    const answers: RawResponse[] = await pooled(
      headers.map((h) => () => send(gw.url, 'GET', '/weather', { headers: h })),
      CONCURRENCY,
    );
    const cost = rpc.methods.length - callsBefore;

    const statuses = new Map<number, number>();
    for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    expect([...statuses.keys()].every((s) => s === 400 || s === 402 || s === 429), JSON.stringify([...statuses])).toBe(true);
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(a.json()).toMatchObject({ code: 'GW_ERR_RATE_LIMITED' });
      expect(Number(a.headers['retry-after'])).toBeGreaterThan(0);
    }
    for (const a of answers.filter((x) => x.status === 400)) expect(a.json()).toMatchObject({ code: 'GW_ERR_PAYMENT_MALFORMED' });
    expect(statuses.get(429) ?? 0).toBeGreaterThan(0);
    expect(cost).toBeLessThanOrEqual(80);
    expect(upstream.seen.length).toBe(seen);
    expect(await world.balances()).toEqual(balancesBefore);

    // Rows only for refusals that proved their payer (the unfunded wallet's, each a 402); garbage
    // and the limit's 429s cost no row.
    const rows = await gw.ledger.receipts({ since: t0, limit: 10_000 });
    expect(rows.map((r) => r.reason)).toEqual(new Array(statuses.get(402) ?? 0).fill('invalid_exact_evm_insufficient_balance'));

    // The limits are counted.
    const { values } = await gw.metrics.verificationFailures.get();
    expect(values.find((v) => v.labels['reason'] === 'failed_payments_exceeded')?.value ?? 0).toBe(statuses.get(429) ?? 0);

    // A real payer, from another address, while the flooder is still held: served and charged once.
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: privateKeyToAccount(PAYER_KEY) });
    const pay = wrapFetchWithPayment(fromAddress('127.0.0.2'), client);
    const delta = await world.moved(async () => {
      expect((await pay(`${gw.url}/weather`)).status).toBe(200);
    });
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    expect(upstream.seen.length).toBe(seen + 1);
    expect(PAYER).not.toBe(privateKeyToAccount(UNFUNDED_KEY).address);
  });
});
