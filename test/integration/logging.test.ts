/** One JSON summary line per request, with secrets never written. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loggerOptions } from '../../src/log.js';
import type { RunningGateway } from '../../src/server.js';
import { gatewayYamlHead, startGateway, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

let upstream: TestUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: '0x1111111111111111111111111111111111111111', network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstream.url}", headers: { authorization: "Bearer SECRET-UPSTREAM-TOKEN" } }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /health", price: free }
  - { match: "GET /down", price: free }
  - { match: "GET /slow", price: free }
`,
    { logger: pino(loggerOptions('info'), sink) },
  );
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

it('writes exactly one summary line per request, with route, price, outcome, status and duration', async () => {
  lines.length = 0;
  await send(gw.url, 'GET', '/weather');
  await send(gw.url, 'GET', '/health', { headers: { authorization: 'Bearer CALLER-SECRET' } });
  await send(gw.url, 'GET', '/nowhere');
  await send(gw.url, 'GET', '/weather', { headers: { 'payment-signature': 'PAYMENT-SECRET' } });
  await waitFor(() => lines.filter((l) => l['msg'] === 'request').length >= 4);
  const summaries = lines.filter((l) => l['msg'] === 'request');
  expect(summaries.map((l) => [l['route'], l['price'], l['outcome'], l['status']])).toEqual([
    ['GET /weather', '10000 usdc@base', 'challenged', 402],
    ['GET /health', 'free', 'free', 200],
    [undefined, 'free', 'not_found', 404],
    ['GET /weather', '10000 usdc@base', 'refused', 400],
  ]);
  for (const l of summaries) expect(typeof l['ms']).toBe('number');
  const all = JSON.stringify(lines);
  for (const secret of ['SECRET-UPSTREAM-TOKEN', 'CALLER-SECRET', 'PAYMENT-SECRET']) expect(all).not.toContain(secret);
});

it('redacts payment and credential headers wherever a request is logged', () => {
  const out: string[] = [];
  const log = pino(loggerOptions('info'), { write: (s: string) => void out.push(s) });
  log.info({ req: { headers: { 'payment-signature': 'p', 'x-payment': 'x', authorization: 'a', 'x-api-key': 'k', accept: 'json' } } }, 'r');
  const logged = JSON.parse(out[0] ?? '{}') as { req: { headers: Record<string, string> } };
  expect(logged.req.headers).toEqual({ 'payment-signature': '[redacted]', 'x-payment': '[redacted]', authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'json' });
});

it('summarises a request whose caller hangs up before the answer too: status 499, counted once', async () => {
  lines.length = 0;
  const counted = async () => (await gw.metrics.requests.get()).values.find((v) => v.labels['route'] === 'GET /slow' && v.labels['outcome'] === 'free')?.value ?? 0;
  const before = await counted();
  const controller = new AbortController();
  const pending = fetch(`${gw.url}/slow`, { signal: controller.signal }).catch(() => undefined);
  await waitFor(() => upstream.seen.some((r) => r.url === '/slow'));
  controller.abort();
  await pending;
  await waitFor(() => lines.some((l) => l['msg'] === 'request' && l['path'] === '/slow'));
  // The upstream answers later; nothing more is written for this request.
  await new Promise((r) => setTimeout(r, 2_200));
  const summaries = lines.filter((l) => l['msg'] === 'request' && l['path'] === '/slow');
  expect(summaries.map((l) => [l['route'], l['status'], l['outcome']])).toEqual([['GET /slow', 499, 'free']]);
  expect(await counted()).toBe(before + 1);
});
