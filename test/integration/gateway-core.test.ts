/**
 * The gateway core on real sockets in front of a real upstream: routing, normalisation bypass
 * attempts, the 402 challenge, CORS, streaming, header handling, upstream faults, health.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { RunningGateway } from '../../src/server.js';
import { gatewayYamlHead, startGateway, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { BIG_BODY_BYTES, startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PAY_TO = '0x1111111111111111111111111111111111111111';
const BASE_USDC = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';

let upstream: TestUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "\${UPSTREAM}", headers: { authorization: "Bearer \${UPSTREAM_TOKEN}" } }
  prefixed: { url: "\${UPSTREAM}/v2" }
  slow: { url: "\${UPSTREAM}", timeoutMs: 300 }
  dead: { url: "http://127.0.0.1:1" }
defaults: { upstream: api }
routes:
  - { match: "GET /weather", price: "$0.01", description: "Current weather", mimeType: application/json }
  - { match: "POST /v1/jobs/:id", price: { amount: "250000", asset: usdc@base } }
  - { match: "GET /health", price: free }
  - { match: "* /files/**", price: free, maxBodyBytes: 4194304 }
  - { match: "GET /big", price: free }
  - { match: "GET /sse", price: free }
  - { match: "GET /spoof", price: "$0.02" }
  - { match: "GET /free-spoof/spoof", price: free }
  - { match: "GET /legacy/**", upstream: prefixed, price: free }
  - { match: "GET /slow", upstream: slow, price: free }
  - { match: "GET /down", upstream: dead, price: free }
`,
    { env: { UPSTREAM: upstream.url, UPSTREAM_TOKEN: 'upstream-secret' } },
  );
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

/** How many requests reached the upstream since `before`. */
const reached = (before: number) => upstream.seen.length - before;

describe('402 challenge', () => {
  it('answers an unpaid priced request with the v2 header, a v1 body and the seed headers, without reaching the upstream', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/weather?city=Paris');
    expect(res.status).toBe(402);
    expect(reached(before)).toBe(0);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toContain('application/json');
    const v2 = decodeHeader(res.headers['payment-required']) as Record<string, unknown>;
    expect(v2).toEqual({
      x402Version: 2,
      error: 'Payment required',
      resource: { url: `${gw.url}/weather?city=Paris`, description: 'Current weather', mimeType: 'application/json' },
      accepts: [
        {
          scheme: 'exact',
          network: 'eip155:8453',
          amount: '10000',
          asset: BASE_USDC,
          payTo: PAY_TO,
          maxTimeoutSeconds: 300,
          extra: { name: 'USD Coin', version: '2' },
        },
      ],
    });
    expect(res.json()).toEqual({
      x402Version: 1,
      error: 'Payment required',
      accepts: [
        {
          scheme: 'exact',
          network: 'base',
          maxAmountRequired: '10000',
          resource: `${gw.url}/weather?city=Paris`,
          description: 'Current weather',
          mimeType: 'application/json',
          payTo: PAY_TO,
          maxTimeoutSeconds: 300,
          asset: BASE_USDC,
          extra: { name: 'USD Coin', version: '2' },
        },
      ],
    });
    expect(res.headers['x-payment-address']).toBe(PAY_TO);
    expect(res.headers['x-payment-amount']).toBe('0.01');
    expect(res.headers['x-payment-currency']).toBe('USDC');
    expect(res.headers['x-payment-chain']).toBe('base');
  });

  it('prices atomic amounts exactly and keeps path parameters', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'POST', '/v1/jobs/AbC-1', { body: '{"x":1}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(402);
    expect(reached(before)).toBe(0);
    const v2 = decodeHeader(res.headers['payment-required']) as { accepts: { amount: string }[] };
    expect(v2.accepts[0]?.amount).toBe('250000');
    expect(res.headers['x-payment-amount']).toBe('0.25');
  });

  it('prices HEAD like the GET it mirrors', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'HEAD', '/weather');
    expect(res.status).toBe(402);
    expect(res.headers['payment-required']).toBeDefined();
    expect(reached(before)).toBe(0);
  });

  it('gives a browser a challenge page with the same headers', async () => {
    const res = await send(gw.url, 'GET', '/weather', { headers: { accept: 'text/html,application/xhtml+xml', 'user-agent': 'Mozilla/5.0' } });
    const agent = await send(gw.url, 'GET', '/weather', { headers: { accept: 'text/html, application/json', 'user-agent': 'my-agent/1.0' } });
    expect(agent.headers['content-type']).toContain('application/json');
    expect(res.status).toBe(402);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.headers['payment-required']).toBeDefined();
    expect(res.headers['x-payment-amount']).toBe('0.01');
    expect(res.text()).toContain('Current weather');
  });

  it('lets browsers send payment headers and read receipts (CORS), and never charges or forwards a preflight', async () => {
    const before = upstream.seen.length;
    const pre = await send(gw.url, 'OPTIONS', '/weather', {
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'payment-signature,x-payment,access-control-expose-headers',
      },
    });
    expect(pre.status).toBe(204);
    expect(String(pre.headers['access-control-allow-headers']).toLowerCase()).toContain('payment-signature');
    expect(String(pre.headers['access-control-allow-headers']).toLowerCase()).toContain('x-payment');
    expect(reached(before)).toBe(0);
    const res = await send(gw.url, 'GET', '/weather', { headers: { origin: 'https://app.example' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const exposed = String(res.headers['access-control-expose-headers']).toUpperCase();
    for (const h of ['PAYMENT-REQUIRED', 'PAYMENT-RESPONSE', 'X-PAYMENT-RESPONSE']) expect(exposed).toContain(h);
  });

  it('refuses a malformed payment header with 400 and a stable code, without reaching the upstream', async () => {
    const before = upstream.seen.length;
    for (const value of ['not base64!', 'eyJ4NDAyVmVyc2lvbiI6Mn0', Buffer.from('{"x402Version":2}').toString('base64')]) {
      const res = await send(gw.url, 'GET', '/weather', { headers: { 'payment-signature': value } });
      expect(res.status).toBe(400);
      expect(res.json()).toMatchObject({ statusCode: 400, code: 'GW_ERR_PAYMENT_MALFORMED', error: 'Bad Request' });
    }
    const v1 = await send(gw.url, 'GET', '/weather', { headers: { 'x-payment': '%%%' } });
    expect(v1.status).toBe(400);
    expect(reached(before)).toBe(0);
  });
});

describe('routing and path normalisation', () => {
  it.each([
    ['/WEATHER'],
    ['/weather/'],
    ['//weather'],
    ['/./weather'],
    ['/health/../weather'],
    ['/%77eather'],
    ['/files/../weather'],
    ['/weather?x=/../health'],
  ])('charges %s like /weather', async (path) => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', path);
    expect(res.status).toBe(402);
    expect(reached(before)).toBe(0);
  });

  it.each([['/weather;jsessionid=1'], ['/weather%3Bx'], ['/health/..%2Fweather'], ['/weather%2F'], ['/%zz'], ['/..'], ['/a/../../weather'], ['/health\\..\\weather'], ['/files/%5c..%5cweather'], ['/files/a%00b']])(
    'refuses %s with 400',
    async (path) => {
      const before = upstream.seen.length;
      const res = await send(gw.url, 'GET', path);
      expect(res.status).toBe(400);
      expect(res.json()).toMatchObject({ code: 'GW_ERR_PATH_INVALID' });
      expect(reached(before)).toBe(0);
    },
  );

  it('forwards the normalised path that was matched', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/files//a/./b/../c%20d?q=1');
    expect(res.status).toBe(200);
    expect(reached(before)).toBe(1);
    expect(upstream.seen.at(-1)?.url).toBe('/files/a/c%20d?q=1');
  });

  it('keeps the caller\'s trailing slash in what it forwards (an APPEND_SLASH upstream would answer a charged 301 without it)', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/files//a/./b/../c%20d/?q=1');
    expect(res.status).toBe(200);
    expect(reached(before)).toBe(1);
    expect(upstream.seen.at(-1)?.url).toBe('/files/a/c%20d/?q=1');
  });

  it('answers unmatched requests with a fastify-shaped 404 (deny by default)', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/nowhere');
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ statusCode: 404, code: 'GW_ERR_ROUTE_NOT_FOUND', error: 'Not Found', message: 'No route matches this request' });
    const wrongMethod = await send(gw.url, 'DELETE', '/weather');
    expect(wrongMethod.status).toBe(404);
    expect(reached(before)).toBe(0);
  });

  it('rewrites onto an upstream base path', async () => {
    const res = await send(gw.url, 'GET', '/legacy/x?y=1');
    expect(res.status).toBe(200);
    expect(upstream.seen.at(-1)?.url).toBe('/v2/legacy/x?y=1');
  });
});

describe('proxying', () => {
  it('adds upstream credentials and X-Forwarded-*, and strips payment headers', async () => {
    const res = await send(gw.url, 'GET', '/health', {
      headers: {
        'x-payment': 'abc',
        'payment-signature': 'def',
        'x-payment-proof': '0x00',
        authorization: 'Bearer caller',
        host: 'api.example.com',
        'x-http-method-override': 'POST',
        'x-original-url': '/weather',
        'x-rewrite-url': '/weather',
        'x-forwarded-prefix': '/paid',
      },
    });
    expect(res.status).toBe(200);
    const seen = upstream.seen.at(-1);
    expect(seen?.headers['authorization']).toBe('Bearer upstream-secret');
    expect(seen?.headers['x-http-method-override']).toBeUndefined();
    expect(seen?.headers['x-original-url']).toBeUndefined();
    expect(seen?.headers['x-rewrite-url']).toBeUndefined();
    expect(seen?.headers['x-forwarded-prefix']).toBeUndefined();
    expect(seen?.headers['x-payment']).toBeUndefined();
    expect(seen?.headers['payment-signature']).toBeUndefined();
    expect(seen?.headers['x-payment-proof']).toBeUndefined();
    expect(seen?.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen?.headers['x-forwarded-proto']).toBe('http');
    expect(seen?.headers['x-forwarded-host']).toBe('api.example.com');
  });

  it('never passes an upstream-forged receipt header to the caller', async () => {
    const res = await send(gw.url, 'GET', '/free-spoof/spoof');
    expect(res.status).toBe(200);
    expect(res.headers['payment-response']).toBeUndefined();
    expect(res.headers['x-payment-response']).toBeUndefined();
  });

  it('streams a large response body', async () => {
    const res = await request(`${gw.url}/big`);
    let bytes = 0;
    for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    expect(res.statusCode).toBe(200);
    expect(bytes).toBe(BIG_BODY_BYTES);
  });

  it('streams a large request body to the upstream', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 1);
    const res = await request(`${gw.url}/files/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ method: 'POST', bytes: body.length });
  });

  it('passes server-sent events through as they happen, not buffered', async () => {
    const res = await request(`${gw.url}/sse`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: { at: number; text: string }[] = [];
    for await (const chunk of res.body) arrivals.push({ at: Date.now(), text: (chunk as Buffer).toString() });
    const all = arrivals.map((a) => a.text).join('');
    expect(all).toContain('data: tick 2');
    // The upstream spaces its events 100 ms apart: a buffering proxy would deliver them at once.
    expect(arrivals.length).toBeGreaterThan(1);
    const first = arrivals[0];
    const last = arrivals.at(-1);
    expect(first && last && last.at - first.at).toBeGreaterThanOrEqual(150);
  });

  it('answers 502 with a stable code when the upstream is down', async () => {
    const res = await send(gw.url, 'GET', '/down');
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ statusCode: 502, code: 'GW_ERR_UPSTREAM_UNAVAILABLE' });
  });

  it('answers 504 with a stable code when the upstream is too slow', async () => {
    const res = await send(gw.url, 'GET', '/slow');
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ statusCode: 504, code: 'GW_ERR_UPSTREAM_TIMEOUT' });
  });
});

describe('health', () => {
  it('serves /healthz and /readyz on the admin listener only', async () => {
    expect((await send(gw.adminUrl, 'GET', '/healthz')).status).toBe(200);
    const ready = await send(gw.adminUrl, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready', config: gw.config.hash, ledger: { store: 'provided by the embedding program', reachable: true } });
    expect((await send(gw.url, 'GET', '/healthz')).status).toBe(404);
    expect((await send(gw.url, 'GET', '/readyz')).status).toBe(404);
  });
});
