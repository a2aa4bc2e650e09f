/**
 * The HTTP edge through a real listening gateway, in raw bytes over net.Socket: the `server`
 * limits (head and request timeouts, keep-alive, the idle timeout, head and body sizes, per-route
 * body limits), and the refusals of request smuggling and of request targets and methods that
 * must never reach an upstream, each pinned as answered today (status and bytes) with what the
 * upstream saw. An HTTP client would normalise or refuse most of these requests before sending.
 *
 * The limits are small (hundreds of milliseconds, a few KiB) so the file runs in seconds.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { runGateway, type RunningGateway } from '../../src/server.js';
import { fakePayments, paymentHeaderFor, type FakePayments } from '../helpers/fake-payments.js';
import { gatewayYamlHead, parseTestConfig, startGatewayFromFile, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';
const HEADERS_TIMEOUT_MS = 300;
const REQUEST_TIMEOUT_MS = 600;
const KEEP_ALIVE_TIMEOUT_MS = 300;
const IDLE_TIMEOUT_MS = 500;
const MAX_HEADER_BYTES = 2048;
const MAX_BODY_BYTES = 1024;
const UPLOAD_MAX_BODY_BYTES = 4096;
/** The upstream's wait before answering `/free/slow`: longer than the idle timeout. */
const SLOW_MS = 1_200;
/** `/free/big`: more than loopback's socket buffers hold, so a caller that stops reading stalls it. */
const BIG_BYTES = 32 * 1024 * 1024;
/** Slack for a loaded machine (two cores, other test files): timers fire late, never early. */
const SLACK_MS = 2_000;

const SERVER_SECTION = `server: { headersTimeoutMs: ${HEADERS_TIMEOUT_MS}, requestTimeoutMs: ${REQUEST_TIMEOUT_MS}, keepAliveTimeoutMs: ${KEEP_ALIVE_TIMEOUT_MS}, idleTimeoutMs: ${IDLE_TIMEOUT_MS}, maxHeaderBytes: ${MAX_HEADER_BYTES}, maxBodyBytes: ${MAX_BODY_BYTES} }`;

/** node's own answers, written before a request reaches the gateway's app. */
const BARE_400 = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
const BARE_408 = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
const BARE_431 = 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n';

/** One request as the upstream saw it, from its head on, whether or not its body ever ended. */
interface Arrival {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  bytes: number;
  ended: boolean;
  closed: boolean;
}

let upstream: Server;
let upstreamUrl: string;
const arrivals: Arrival[] = [];
let fake: FakePayments;
let gw: RunningGateway;
let port: number;
/** A requirement the gateway's challenge offers for the priced routes. */
let accepted: Record<string, unknown>;

/** An upstream that records each request at its head and counts its body bytes as they come. */
function startRecordingUpstream(): Promise<void> {
  upstream = createServer((req, res) => {
    const arrival: Arrival = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes: 0, ended: false, closed: false };
    arrivals.push(arrival);
    req.on('data', (chunk: Buffer) => (arrival.bytes += chunk.length));
    req.on('error', () => {});
    req.on('close', () => (arrival.closed = true));
    req.on('end', () => {
      arrival.ended = true;
      if (arrival.url.endsWith('/slow')) {
        setTimeout(() => res.end(JSON.stringify({ slow: true })), SLOW_MS);
      } else if (arrival.url.endsWith('/big')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BYTES) });
        const chunk = Buffer.alloc(64 * 1024, 7);
        let sent = 0;
        const pump = () => {
          while (sent < BIG_BYTES) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else {
        const body = JSON.stringify({ bytes: arrival.bytes });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
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

function gatewayYaml(server: string): string {
  return `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
${server}
reload: { watch: false }
upstreams:
  api: { url: "${upstreamUrl}", timeoutMs: 5000 }
routes:
  - { match: "* /paid/**", price: "$0.01" }
  - { match: "* /upload", price: free, maxBodyBytes: ${UPLOAD_MAX_BODY_BYTES} }
  - { match: "* /free/**", price: free }
`;
}

beforeAll(async () => {
  await startRecordingUpstream();
  fake = fakePayments();
  gw = await runGateway(parseTestConfig(gatewayYaml(SERVER_SECTION)), {
    logger: pino({ level: process.env['X402_TEST_LOG'] ?? 'silent' }),
    ledger: new SqliteLedger(':memory:'),
    backends: fake.backends,
  });
  port = Number(new URL(gw.url).port);
  const challenge = await send(gw.url, 'GET', '/paid/x');
  const offered = (decodeHeader(challenge.headers['payment-required']) as { accepts: Record<string, unknown>[] }).accepts[0];
  if (!offered) throw new Error('no requirement offered');
  accepted = offered;
});

afterAll(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => {
    upstream?.closeAllConnections();
    upstream?.close(() => resolve());
  });
});

beforeEach(() => {
  fake.settleDelayMs = 0;
});

/** Fresh payment header lines (a new nonce each time) for the priced routes. */
function paymentLines(): string {
  return Object.entries(paymentHeaderFor(accepted)).map(([name, value]) => `${name}: ${value}\r\n`).join('');
}

/** One chunk of `n` bytes in chunked transfer coding. */
function chunk(n: number): string {
  return `${n.toString(16)}\r\n${'x'.repeat(n)}\r\n`;
}

interface Exchange {
  /** Every byte the gateway sent, as latin1. */
  readonly text: string;
  /** Whether the gateway closed the connection (else the wait ran out, or one answer was read). */
  readonly closed: boolean;
  /** Milliseconds from the first write to the close. */
  readonly ms: number;
}

/**
 * Writes each step's bytes after its delay (ms after the previous step) on a new connection, and
 * collects what comes back until the gateway closes it, `waitMs` passes, or (`oneAnswer`) one
 * whole answer with a Content-Length has arrived.
 */
function exchange(steps: readonly (readonly [number, string])[], options: { readonly waitMs?: number; readonly oneAnswer?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const t0 = Date.now();
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (options.oneAnswer && answerComplete(text)) finish(false);
    });
    socket.on('error', () => {});
    socket.on('close', () => finish(true));
    let at = 0;
    for (const [delay, bytes] of steps) {
      at += delay;
      setTimeout(() => socket.writable && socket.write(bytes), at);
    }
    const timer = setTimeout(() => finish(false), options.waitMs ?? 5_000);
  });
}

/** True when `text` starts with one answer whose body is as long as its Content-Length. */
function answerComplete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(text.slice(0, end + 2));
  return length !== null && Buffer.byteLength(text.slice(end + 4), 'latin1') >= Number(length[1]);
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
}

function bodyOf(text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

/** Runs `act` and returns what reached the upstream and the fake payment backends meanwhile. */
async function observe<T>(act: () => Promise<T>): Promise<{ result: T; arrived: Arrival[]; verified: number; settled: number }> {
  const [a, v, s] = [arrivals.length, fake.verified.length, fake.settled.length];
  const result = await act();
  return { result, arrived: arrivals.slice(a), verified: fake.verified.length - v, settled: fake.settled.length - s };
}

describe('timeouts', () => {
  it('headersTimeoutMs: half a head and then silence gets a bare 408 and the connection closed', async () => {
    const { result, arrived } = await observe(() => exchange([[0, 'GET /free/x HTTP/1.1\r\nHost: a\r\n']]));
    expect(result.text).toBe(BARE_408);
    expect(result.closed).toBe(true);
    expect(result.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(result.ms).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
    expect(arrived).toEqual([]);
  });

  it('headersTimeoutMs: a head trickled a line at a time (slowloris) is cut by the same clock', async () => {
    const lines = Array.from({ length: 20 }, (_, i): [number, string] => [60, `X-Drip-${i}: 1\r\n`]);
    const { result, arrived } = await observe(() => exchange([[0, 'GET /free/x HTTP/1.1\r\nHost: a\r\n'], ...lines]));
    // A 408, not the 200 a completed head would get: cut while still trickling.
    expect(result.text).toBe(BARE_408);
    expect(arrived).toEqual([]);
  });

  it('headersTimeoutMs: a connection that sends nothing is closed with a bare 408', async () => {
    const result = await exchange([]);
    expect(result.text).toBe(BARE_408);
    expect(result.ms).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
  });

  it('requestTimeoutMs: a body trickled past it on a free route gets a bare 408; the upstream never gets it whole', async () => {
    const drip = Array.from({ length: 20 }, (): [number, string] => [100, 'x']);
    const { result, arrived } = await observe(() => exchange([[0, 'POST /free/trickle HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n'], ...drip]));
    expect(result.text).toBe(BARE_408);
    expect(result.ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(result.ms).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS);
    // The body streams to the upstream as it comes; the cut aborts the upstream's request.
    await waitFor(() => arrived.every((a) => a.closed));
    expect(arrived.map((a) => [a.url, a.ended])).toEqual([['/free/trickle', false]]);
    expect(arrived[0]?.bytes).toBeLessThan(100);
  });

  it('requestTimeoutMs: an unpaid trickle on a priced route is challenged at once, forwarded never, and cut', async () => {
    const drip = Array.from({ length: 20 }, (): [number, string] => [100, 'x']);
    const { result, arrived, verified } = await observe(() => exchange([[0, 'POST /paid/trickle HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n'], ...drip]));
    expect(statusOf(result.text)).toBe(402);
    // The 402 went out while the body was still coming; node's request clock then cut the rest.
    expect(result.text.endsWith(BARE_408)).toBe(true);
    expect(result.closed).toBe(true);
    expect(result.ms).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS);
    expect([arrived, verified]).toEqual([[], 0]);
  });

  it('requestTimeoutMs: a paid trickle is cut, the upstream never gets the body whole, and nothing is charged', async () => {
    const t0 = Date.now();
    const drip = Array.from({ length: 20 }, (): [number, string] => [100, 'x']);
    const head = `POST /paid/trickle HTTP/1.1\r\nHost: a\r\n${paymentLines()}Content-Length: 100\r\n\r\n`;
    const { result, arrived, verified, settled } = await observe(() => exchange([[0, head], ...drip]));
    expect(result.text).toBe(BARE_408);
    await waitFor(async () => (await gw.ledger.receipts({ since: t0 })).length === 1);
    expect([verified, settled]).toEqual([1, 0]);
    expect(arrived.map((a) => [a.url, a.ended])).toEqual([['/paid/trickle', false]]);
    expect((await gw.ledger.receipts({ since: t0 })).map((r) => r.status)).toEqual(['not_charged']);
  });

  it('keepAliveTimeoutMs: an idle keep-alive connection is closed after it (node adds a second of grace)', async () => {
    const result = await exchange([[0, 'GET /free/x HTTP/1.1\r\nHost: a\r\n\r\n']]);
    expect(statusOf(result.text)).toBe(200);
    expect(result.closed).toBe(true);
    expect(result.ms).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS);
    expect(result.ms).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS + 1_000 + SLACK_MS);
  });

  it("keepAliveTimeoutMs is the gateway's: the upstream's own Keep-Alive header (node's 5 s) is not passed on", async () => {
    const res = await send(gw.url, 'GET', '/free/x');
    expect(res.status).toBe(200);
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
  });

  it('idleTimeoutMs does not cut a request waiting on a slow upstream', async () => {
    const res = await send(gw.url, 'GET', '/free/slow');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ slow: true });
  });

  it('idleTimeoutMs does not cut a paid request waiting for its settlement', async () => {
    fake.settleDelayMs = IDLE_TIMEOUT_MS * 2;
    const { result, settled } = await observe(() => send(gw.url, 'GET', '/paid/x', { headers: paymentHeaderFor(accepted) }));
    expect(result.status).toBe(200);
    expect(result.headers['payment-response']).toBeDefined();
    expect(settled).toBe(1);
  });

  it('idleTimeoutMs cuts a caller that stops reading its answer', async () => {
    const received = await new Promise<number>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let bytes = 0;
      socket.on('data', (data: Buffer) => (bytes += data.length));
      socket.on('error', () => {});
      socket.on('close', () => resolve(bytes));
      socket.write('GET /free/big HTTP/1.1\r\nHost: a\r\n\r\n');
      // Not reading for three idle timeouts, then reading what is left.
      socket.pause();
      setTimeout(() => socket.resume(), IDLE_TIMEOUT_MS * 3);
      setTimeout(() => socket.destroy(), 20_000);
    });
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(BIG_BYTES);
  });
});

describe('sizes', () => {
  it('maxHeaderBytes: a larger head gets a bare 431; the upstream sees nothing', async () => {
    const { result, arrived } = await observe(() => exchange([[0, `GET /free/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES + 500)}\r\n\r\n`]]));
    expect(result.text).toBe(BARE_431);
    expect(result.closed).toBe(true);
    expect(arrived).toEqual([]);
  });

  it('maxHeaderBytes: a head within it passes', async () => {
    const result = await exchange([[0, `GET /free/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES - 500)}\r\n\r\n`]], { oneAnswer: true });
    expect(statusOf(result.text)).toBe(200);
  });

  it('maxBodyBytes: a Content-Length over it gets 413 GW_ERR_BODY_TOO_LARGE with Connection: close, forwarding nothing', async () => {
    const { result, arrived } = await observe(() => exchange([[0, `POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n${'x'.repeat(MAX_BODY_BYTES + 1)}`]]));
    expect(statusOf(result.text)).toBe(413);
    expect(result.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(bodyOf(result.text))).toEqual({ statusCode: 413, code: 'GW_ERR_BODY_TOO_LARGE', error: 'Payload Too Large', message: 'The request body is too large' });
    expect(result.closed).toBe(true);
    expect(arrived).toEqual([]);
  });

  it('maxBodyBytes: on a priced route the declared size is refused before the payment is even verified', async () => {
    const head = `POST /paid/x HTTP/1.1\r\nHost: a\r\n${paymentLines()}Content-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`;
    const { result, arrived, verified, settled } = await observe(() => exchange([[0, head + 'x'.repeat(MAX_BODY_BYTES + 1)]]));
    expect(statusOf(result.text)).toBe(413);
    expect([arrived, verified, settled]).toEqual([[], 0, 0]);
  });

  it('maxBodyBytes: a body of exactly the limit is forwarded whole', async () => {
    const result = await exchange([[0, `POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length: ${MAX_BODY_BYTES}\r\n\r\n${'x'.repeat(MAX_BODY_BYTES)}`]], { oneAnswer: true });
    expect(statusOf(result.text)).toBe(200);
    expect(JSON.parse(bodyOf(result.text))).toEqual({ bytes: MAX_BODY_BYTES });
  });

  it('maxBodyBytes: a chunked body within it is forwarded whole', async () => {
    const result = await exchange([[0, `POST /free/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(500)}${chunk(500)}0\r\n\r\n`]], { oneAnswer: true });
    expect(statusOf(result.text)).toBe(200);
    expect(JSON.parse(bodyOf(result.text))).toEqual({ bytes: 1000 });
  });

  it('maxBodyBytes: a chunked body that goes over it is cut: 413, and the upstream never gets it whole', async () => {
    const { result, arrived } = await observe(() =>
      exchange([[0, `POST /free/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(800)}`], [100, chunk(800)]]),
    );
    expect(statusOf(result.text)).toBe(413);
    expect(JSON.parse(bodyOf(result.text))).toMatchObject({ code: 'GW_ERR_BODY_TOO_LARGE' });
    expect(result.closed).toBe(true);
    await waitFor(() => arrived.every((a) => a.closed));
    expect(arrived.map((a) => [a.url, a.ended])).toEqual([['/free/chunked', false]]);
    expect(arrived[0]?.bytes).toBeLessThanOrEqual(MAX_BODY_BYTES);
  });

  it('maxBodyBytes: a paid chunked body that goes over it is cut and not charged (the reservation is released)', async () => {
    const t0 = Date.now();
    const head = `POST /paid/chunked HTTP/1.1\r\nHost: a\r\n${paymentLines()}Transfer-Encoding: chunked\r\n\r\n${chunk(800)}`;
    const { result, arrived, settled } = await observe(() => exchange([[0, head], [100, chunk(800)]]));
    expect(statusOf(result.text)).toBe(413);
    await waitFor(() => arrived.every((a) => a.closed));
    expect(arrived.map((a) => [a.url, a.ended])).toEqual([['/paid/chunked', false]]);
    expect(settled).toBe(0);
    expect((await gw.ledger.receipts({ since: t0 })).map((r) => [r.status, r.reason])).toEqual([['not_charged', 'body_too_large']]);
  });

  it("a route's own maxBodyBytes overrides server.maxBodyBytes", async () => {
    const body = (n: number) => `POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${n}\r\n\r\n${'x'.repeat(n)}`;
    const within = await exchange([[0, body(MAX_BODY_BYTES * 2)]], { oneAnswer: true });
    expect(statusOf(within.text)).toBe(200);
    expect(JSON.parse(bodyOf(within.text))).toEqual({ bytes: MAX_BODY_BYTES * 2 });
    const over = await observe(() => exchange([[0, body(UPLOAD_MAX_BODY_BYTES + 1)]]));
    expect(statusOf(over.result.text)).toBe(413);
    expect(over.arrived).toEqual([]);
  });
});

/**
 * Today's refusals, pinned byte for byte. node's parser answers the smuggling shapes before the
 * gateway sees a request; the rest are the gateway's (or its CORS plugin's) own answers.
 */
describe('refusals, in raw bytes', () => {
  const bare400: readonly (readonly [string, string])[] = [
    ['Content-Length with Transfer-Encoding', 'POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding with Content-Length, on a paid request', `POST /paid/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n${'PAYMENT-SIGNATURE: e30=\r\n'}Content-Length: 5\r\n\r\n0\r\n\r\n`],
    ['two different Content-Lengths', 'POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['two equal Content-Lengths', 'POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
    ['Transfer-Encoding twice', 'POST /free/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a space before the colon', 'POST /free/x HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello'],
    ['obs-fold (a header continued on the next line)', 'GET /free/x HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n'],
    ['bare LF line ends', 'GET /free/x HTTP/1.1\nHost: a\n\n'],
    ['a bare LF inside the head', 'GET /free/x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n'],
  ];
  it.each(bare400)('%s: a bare 400 from node, the connection closed, nothing upstream', async (_what, bytes) => {
    const { result, arrived, verified } = await observe(() => exchange([[0, bytes]]));
    expect(result.text).toBe(BARE_400);
    expect(result.closed).toBe(true);
    expect([arrived, verified]).toEqual([[], 0]);
  });

  it.each([
    ['GET http://evil/x HTTP/1.1', 'GET http://evil/x HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['an absolute-form target naming a priced path', 'GET http://a/paid/x HTTP/1.1\r\nHost: a\r\n\r\n'],
  ])('absolute form (%s): 400 GW_ERR_PATH_INVALID, nothing upstream', async (_what, bytes) => {
    const { result, arrived, verified } = await observe(() => exchange([[0, bytes]], { oneAnswer: true }));
    expect(statusOf(result.text)).toBe(400);
    expect(JSON.parse(bodyOf(result.text))).toEqual({
      statusCode: 400,
      code: 'GW_ERR_PATH_INVALID',
      error: 'Bad Request',
      message: 'The request path is not a valid URL path: path must start with /',
    });
    expect([arrived, verified]).toEqual([[], 0]);
  });

  it('OPTIONS * HTTP/1.1: 400 "Invalid Preflight Request" from the CORS plugin, nothing upstream', async () => {
    const { result, arrived } = await observe(() => exchange([[0, 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n']], { oneAnswer: true }));
    expect(statusOf(result.text)).toBe(400);
    expect(bodyOf(result.text)).toBe('Invalid Preflight Request');
    expect(arrived).toEqual([]);
  });

  it('OPTIONS * shaped as a preflight: the gateway\'s own 204, nothing upstream', async () => {
    const { result, arrived } = await observe(() =>
      exchange([[0, 'OPTIONS * HTTP/1.1\r\nHost: a\r\nOrigin: http://x.example\r\nAccess-Control-Request-Method: GET\r\n\r\n']], { oneAnswer: true }),
    );
    expect(statusOf(result.text)).toBe(204);
    expect(result.text).toMatch(/\r\naccess-control-allow-origin: \*\r\n/);
    expect(arrived).toEqual([]);
  });

  it('CONNECT host:443: closed without an answer (node has no CONNECT handler), nothing upstream', async () => {
    const { result, arrived } = await observe(() => exchange([[0, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n']]));
    expect(result.text).toBe('');
    expect(result.closed).toBe(true);
    expect(result.ms).toBeLessThan(SLACK_MS);
    expect(arrived).toEqual([]);
  });

  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

  it('Upgrade: websocket on a priced route: 402, never 101, nothing upstream', async () => {
    const { result, arrived, verified } = await observe(() => exchange([[0, `GET /paid/ws HTTP/1.1\r\nHost: a\r\n${upgrade}\r\n`]], { oneAnswer: true }));
    expect(statusOf(result.text)).toBe(402);
    expect(result.text).toMatch(/\r\npayment-required: /);
    expect([arrived, verified]).toEqual([[], 0]);
  });

  it('Upgrade: websocket on a paid request: served as a plain request, charged once, no tunnel', async () => {
    const { result, arrived, settled } = await observe(() =>
      exchange([[0, `GET /paid/ws HTTP/1.1\r\nHost: a\r\n${paymentLines()}${upgrade}\r\n`]], { oneAnswer: true }),
    );
    expect(statusOf(result.text)).toBe(200);
    expect(arrived.map((a) => [a.url, a.headers.upgrade])).toEqual([['/paid/ws', undefined]]);
    expect(settled).toBe(1);
  });
});

describe('reload', () => {
  it('applies new timeouts to the listening server: a longer headersTimeoutMs holds a half head it used to cut', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-edge-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, gatewayYaml(SERVER_SECTION));
    const reloaded = await startGatewayFromFile(path);
    try {
      const halfHead = (gateway: RunningGateway) =>
        new Promise<Exchange>((resolve) => {
          const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
          const t0 = Date.now();
          let text = '';
          socket.on('data', (data: Buffer) => (text += data.toString('latin1')));
          socket.on('error', () => {});
          socket.on('close', () => resolve({ text, closed: true, ms: Date.now() - t0 }));
          socket.write('GET /free/x HTTP/1.1\r\nHost: a\r\n');
          setTimeout(() => {
            socket.removeAllListeners('close');
            socket.destroy();
            resolve({ text, closed: false, ms: Date.now() - t0 });
          }, 2_000);
        });
      expect((await halfHead(reloaded)).text).toBe(BARE_408);
      writeFileSync(path, gatewayYaml(SERVER_SECTION.replace(`headersTimeoutMs: ${HEADERS_TIMEOUT_MS}`, 'headersTimeoutMs: 5000').replace(`requestTimeoutMs: ${REQUEST_TIMEOUT_MS}`, 'requestTimeoutMs: 10000').replace(`idleTimeoutMs: ${IDLE_TIMEOUT_MS}`, 'idleTimeoutMs: 10000')));
      expect((await reloaded.reload()).result).toBe('applied');
      expect(await halfHead(reloaded)).toMatchObject({ text: '', closed: false });
    } finally {
      await reloaded.close();
    }
  });
});
