/**
 * Regressions of a red-team review, through the running gateway on a real chain, with balances
 * read on chain wherever a request could charge: uncharged upstream work is bounded, upstream
 * retries are off, method overrides and ambiguous Host headers are refused, the trailing slash
 * reaches the upstream, a paid event stream survives its quiet gaps, `unmatched: free` can
 * protect the paths under a priced route, and CDN-only cache headers never leave a paid answer.
 */
import { waitFor } from '../helpers/wait.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, mintTestUsdc } from '../../src/tools/devchain/token.js';
import { challengeOf, localSettlementBase, PAYEE, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';

const CENT = 10_000n;
/** A payer of its own for the limit test, whose bucket it empties. */
const FAILING_PAYER_KEY = ANVIL_DEV_KEYS[3];
/** The upstream's timeout to its status line; the event stream below is quiet for longer. */
const UPSTREAM_TIMEOUT_MS = 1_000;
const QUIET_GAP_MS = 1_600;

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

let world: ChainWorld;
let upstream: Server;
let upstreamUrl: string;
const seen: Seen[] = [];
let gw: RunningGateway;

/** An upstream with the behaviours the review used: side effects, 503s, Django's slash redirect, quiet streams. */
function startHostileUpstream(): Promise<void> {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('latin1')));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const url = new URL(req.url ?? '/', 'http://upstream');
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(value));
      };
      switch (url.pathname) {
        case '/jobs': {
          const status = Number(url.searchParams.get('status') ?? '200');
          setTimeout(() => json(status, { ran: true }), Number(url.searchParams.get('delay') ?? '0'));
          return;
        }
        case '/flaky':
          return json(503, { busy: true });
        case '/django/items':
          // Django's APPEND_SLASH: the path without its slash is redirected, never served.
          res.writeHead(301, { location: '/django/items/' });
          return res.end();
        case '/django/items/':
          return json(200, { items: [] });
        case '/stream':
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write('data: one\n\n');
          setTimeout(() => res.end('data: two\n\n'), QUIET_GAP_MS);
          return;
        case '/quiet':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"part":');
          setTimeout(() => res.end('1}'), QUIET_GAP_MS);
          return;
        case '/cdn':
        case '/cdn-free':
          return json(200, { cached: 'maybe' }, {
            'cache-control': 'public, max-age=600',
            'cdn-cache-control': 'max-age=600',
            'surrogate-control': 'max-age=600',
            'cloudflare-cdn-cache-control': 'max-age=600',
          });
        default:
          return json(200, { method: req.method, url: req.url, host: req.headers.host, forwardedHost: req.headers['x-forwarded-host'] ?? null });
      }
    });
  });
  return new Promise((resolve) =>
    upstream.listen(0, '127.0.0.1', () => {
      upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

beforeAll(async () => {
  world = await startChainWorld();
  await mintTestUsdc(world.admin, { token: BASE_USDC, to: privateKeyToAccount(FAILING_PAYER_KEY).address, amount: 100n * CENT });
  await startHostileUpstream();
  gw = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl) })}
upstreams:
  api: { url: "${upstreamUrl}", timeoutMs: ${UPSTREAM_TIMEOUT_MS} }
trustProxy: true
limits: { unchargedForwards: { max: 3, perSeconds: 3600 } }
routes:
  - { match: "POST /jobs", price: "$0.01" }
  - { match: "GET /flaky", price: "$0.01" }
  - { match: "GET /django/items", price: "$0.01" }
  - { match: "GET /stream", price: "$0.01" }
  - { match: "GET /quiet", price: free }
  - { match: "GET /cdn", price: "$0.01" }
  - { match: "GET /cdn-free", price: free }
  - { match: "GET /report", price: "$0.01" }
  - { match: "* /report", price: free }
  - { match: "GET /tenant", host: paid.example.com, price: "$0.01" }
  - { match: "GET /tenant", price: free }
`);
});

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => upstream?.close(r));
  await world?.stop();
});

/** A v2 payment header for `path`, signed by the payer against the gateway's own challenge. */
async function paymentFor(path: string, method = 'GET', key?: Hex): Promise<Record<string, string>> {
  const http = v2HttpClient(key);
  const challenge = await challengeOf(http, `${gw.url}${path}`, { method });
  return http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
}

const hits = (pathname: string) => seen.filter((s) => s.url.split('?')[0] === pathname).length;

describe('settlement: after, upstream work is neither free nor repeatable', () => {
  it('one header re-presented after upstream failures drives at most limits.unchargedForwards executions, then 429', async () => {
    const header = await paymentFor('/jobs?status=500', 'POST', FAILING_PAYER_KEY);
    const payer = privateKeyToAccount(FAILING_PAYER_KEY).address;
    const balanceBefore = await world.balance(payer);
    const before = hits('/jobs');
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof send>> | undefined;
    const delta = await world.moved(async () => {
      for (let i = 0; i < 5; i++) {
        const res = await send(gw.url, 'POST', '/jobs?status=500', { headers: header, body: '{}' });
        statuses.push(res.status);
        if (res.status === 429) limited = res;
      }
    });
    // Before the fix: five 500s, five executions of the side effect, nothing charged.
    expect(statuses).toEqual([500, 500, 500, 429, 429]);
    expect(hits('/jobs') - before).toBe(3);
    expect(limited?.json()).toMatchObject({ code: 'GW_ERR_RATE_LIMITED', statusCode: 429 });
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    expect(delta.payee).toBe(0n);
    expect(await world.balance(payer)).toBe(balanceBefore);
  });

  it('a caller who hangs up on a slow side-effecting POST is charged once; the same header runs it again at most limits.redeliveries times', async () => {
    const header = await paymentFor('/jobs?delay=600', 'POST');
    const before = hits('/jobs');
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const controller = new AbortController();
      const request = fetch(`${gw.url}/jobs?delay=600`, { method: 'POST', body: '{}', headers: header, signal: controller.signal }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 200));
      controller.abort();
      expect(await request).toBe('aborted');
      for (let i = 0; i < 50 && !(await gw.ledger.receipts({ since: t0 })).some((r) => r.status === 'settled'); i++) await new Promise((r) => setTimeout(r, 100));
      // The same header again: the caller never got the answer it paid for, so it is served
      // again (the work runs again), charged nothing: here it hangs up each time, until the
      // re-delivery limit (3 by default) is used up.
      for (let i = 0; i < 3; i++) {
        const retry = new AbortController();
        const again = fetch(`${gw.url}/jobs?delay=600`, { method: 'POST', body: '{}', headers: header, signal: retry.signal }).catch(() => 'aborted');
        await waitFor(() => hits('/jobs') - before === i + 2, 5_000, 10);
        retry.abort();
        expect(await again).toBe('aborted');
      }
      await waitFor(async () => (await gw.ledger.receipts({ since: t0 })).filter((r) => r.status === 'redelivered').length === 3, 5_000, 20);
      const spent = await send(gw.url, 'POST', '/jobs?delay=600', { headers: header, body: '{}' });
      expect(spent.status).toBe(402);
      expect(decodeHeader(spent.headers['payment-required'])).toMatchObject({ error: 'invalid_exact_evm_nonce_already_used' });
    });
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    expect(hits('/jobs') - before).toBe(4);
    const rows = await gw.ledger.receipts({ since: t0 });
    expect(rows.filter((r) => r.status === 'settled').map((r) => r.reason)).toEqual(['client_closed']);
    expect(rows.filter((r) => r.status === 'redelivered')).toHaveLength(3);
  });

  it('a GET answered 503 reaches the upstream once (reply-from would retry it ten times) and is not charged', async () => {
    const header = await paymentFor('/flaky');
    const before = hits('/flaky');
    const delta = await world.moved(async () => {
      expect((await send(gw.url, 'GET', '/flaky', { headers: header })).status).toBe(503);
    });
    expect(hits('/flaky') - before).toBe(1);
    expect(delta).toEqual({ payer: 0n, payee: 0n });
  });
});

describe('method overrides', () => {
  it.each([
    ['the query', '/report?_method=GET', {}, ''],
    ['the query, any case', '/report?a=1&_METHOD=get', {}, ''],
    ['a urlencoded form', '/report', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1&_method=GET'],
    ['a percent-encoded field name', '/report', { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, '%5Fmethod=GET'],
    ['a multipart form', '/report', { 'content-type': 'multipart/form-data; boundary=XX' }, '--XX\r\nContent-Disposition: form-data; name="_method"\r\n\r\nGET\r\n--XX--\r\n'],
  ])('a free POST with _method in %s never reaches the upstream beside a priced GET: 400', async (_what, path, headers, body) => {
    const before = seen.length;
    const res = await send(gw.url, 'POST', path, { headers, body });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 'GW_ERR_METHOD_OVERRIDE' });
    expect(seen.length).toBe(before);
  });

  it('a form POST without _method on that path is forwarded with its body unchanged', async () => {
    const res = await send(gw.url, 'POST', '/report', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'method=GET&x=1' });
    expect(res.status).toBe(200);
    expect(seen.at(-1)?.body).toBe('method=GET&x=1');
  });
});

describe('Host', () => {
  it.each(['paid.example.com, free.example.com', 'paid.example.com:443:1', 'paid.example.com%2e', 'a b', '[zz::1]'])('refuses Host: %s with 400, before any upstream', async (host) => {
    const before = seen.length;
    const res = await send(gw.url, 'GET', '/tenant', { headers: { host } });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 'GW_ERR_HOST_INVALID' });
    expect(seen.length).toBe(before);
  });

  it('routes on the host it forwards: the caller cannot claim another with X-Forwarded-Host (trustProxy on)', async () => {
    expect((await send(gw.url, 'GET', '/tenant', { headers: { host: 'paid.example.com' } })).status).toBe(402);
    expect((await send(gw.url, 'GET', '/tenant', { headers: { host: '[::1]:8402' } })).status).toBe(200);
    const free = await send(gw.url, 'GET', '/tenant', { headers: { host: 'free.example.com', 'x-forwarded-host': 'paid.example.com' } });
    expect(free.status).toBe(200);
    expect(free.json()).toMatchObject({ forwardedHost: 'free.example.com' });
  });
});

describe('charged only with the answer', () => {
  it("forwards the caller's trailing slash: an APPEND_SLASH upstream is served and charged once, never a charged 301", async () => {
    const header = await paymentFor('/django/items/');
    let res: Awaited<ReturnType<typeof send>> | undefined;
    const delta = await world.moved(async () => {
      res = await send(gw.url, 'GET', '/django/items/', { headers: header });
    });
    expect(res?.status).toBe(200);
    expect(res?.json()).toEqual({ items: [] });
    expect(seen.at(-1)?.url).toBe('/django/items/');
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
  });

  it("a paid event stream quiet for longer than the upstream's timeoutMs arrives whole", async () => {
    const header = await paymentFor('/stream');
    let res: Awaited<ReturnType<typeof send>> | undefined;
    const delta = await world.moved(async () => {
      res = await send(gw.url, 'GET', '/stream', { headers: header });
    });
    expect(res?.status).toBe(200);
    expect(res?.text()).toBe('data: one\n\ndata: two\n\n');
    expect(res?.headers['payment-response']).toBeDefined();
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
  });

  it('any other answer still may not go quiet for longer than the idle timeout (timeoutMs by default)', async () => {
    const outcome = await send(gw.url, 'GET', '/quiet').then(
      (res) => res.text(),
      () => 'cut',
    );
    expect(outcome).not.toBe('{"part":1}');
  });
});

describe('shared caches', () => {
  it('drops CDN-only cache headers from a paid answer and makes it private; a free answer keeps them', async () => {
    const header = await paymentFor('/cdn');
    let paid: Awaited<ReturnType<typeof send>> | undefined;
    const delta = await world.moved(async () => {
      paid = await send(gw.url, 'GET', '/cdn', { headers: header });
    });
    expect(paid?.status).toBe(200);
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    expect(paid?.headers['cache-control']).toBe('max-age=600, private');
    for (const name of ['cdn-cache-control', 'surrogate-control', 'cloudflare-cdn-cache-control']) expect(paid?.headers[name]).toBeUndefined();
    const free = await send(gw.url, 'GET', '/cdn-free');
    expect(free.headers['cdn-cache-control']).toBe('max-age=600');
    expect(free.headers['surrogate-control']).toBe('max-age=600');
  });
});

describe('unmatched: free and the paths under a priced route', () => {
  const config = (unmatched: string) => `${gatewayYamlHead({ payTo: PAYEE, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstreamUrl}" }
defaults: { unmatched: ${unmatched} }
routes:
  - { match: "GET /v1/report", price: "$0.01" }
`;

  it('protectPrefixes refuses a path that extends a priced one (404); other unmatched paths pass free', async () => {
    const protectedGw = await startGateway(config('{ free: true, protectPrefixes: true }'));
    try {
      const before = seen.length;
      expect((await send(protectedGw.url, 'GET', '/v1/report/anything')).status).toBe(404);
      expect((await send(protectedGw.url, 'POST', '/V1/Report/x/y')).status).toBe(404);
      expect(seen.length).toBe(before);
      expect((await send(protectedGw.url, 'GET', '/v1/report')).status).toBe(402);
      expect((await send(protectedGw.url, 'GET', '/v1/reports')).status).toBe(200);
    } finally {
      await protectedGw.close();
    }
  });

  it('without it, such a path passes free, as documented and warned about', async () => {
    const openGw = await startGateway(config('free'));
    try {
      expect((await send(openGw.url, 'GET', '/v1/report/anything')).status).toBe(200);
    } finally {
      await openGw.close();
    }
  });
});
