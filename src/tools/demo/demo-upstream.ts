/**
 * The API the demo gateway charges for: a tiny node:http server on loopback with one endpoint of
 * each shape a paid API tends to have (a JSON GET, a JSON POST, a server-sent event stream) and a
 * free health check. It knows nothing about payments; that is the point of the gateway.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** A running demo upstream. `close()` also ends open streams and keep-alive connections. */
export interface DemoUpstream {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  close(): Promise<void>;
}

export interface DemoUpstreamOptions {
  readonly host?: string;
  /** 0 (the default) lets the OS choose. */
  readonly port?: number;
}

/** The largest body /v1/echo reads; more is refused with 413. */
export const DEMO_ECHO_MAX_BYTES = 64 * 1024;
/** /v1/stream sends this many events, one every DEMO_STREAM_INTERVAL_MS, then ends. */
export const DEMO_STREAM_EVENTS = 5;
export const DEMO_STREAM_INTERVAL_MS = 200;

const CONDITIONS = ['sunny', 'partly cloudy', 'overcast', 'light rain', 'windy', 'foggy'] as const;

export async function startDemoUpstream(opts: DemoUpstreamOptions = {}): Promise<DemoUpstream> {
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('demo upstream is not on a TCP port');
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // The gateway keeps pooled connections open, and a stream may be mid-way.
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://upstream.invalid');
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const route = `${method} ${url.pathname}`;
  switch (route) {
    case 'GET /health':
      return sendJson(res, 200, { status: 'ok' });
    case 'GET /v1/weather': {
      const city = url.searchParams.get('city');
      // A 400 here is not charged for: the gateway settles only after an upstream answer < 400.
      if (!city) return sendJson(res, 400, { error: 'the city query parameter is required, e.g. ?city=Paris' });
      return sendJson(res, 200, weather(city));
    }
    case 'POST /v1/echo': {
      const body = await readBody(req, DEMO_ECHO_MAX_BYTES);
      if (body === undefined) return sendJson(res, 413, { error: `body larger than ${DEMO_ECHO_MAX_BYTES} bytes` });
      let parsed: unknown;
      try {
        parsed = body.length === 0 ? null : JSON.parse(body);
      } catch {
        return sendJson(res, 400, { error: 'body is not JSON' });
      }
      return sendJson(res, 200, { echo: parsed, bytes: Buffer.byteLength(body), receivedAt: new Date().toISOString() });
    }
    case 'GET /v1/stream':
      return stream(res);
    case 'GET /v1/time':
      return sendJson(res, 200, { now: new Date().toISOString() });
    default:
      return sendJson(res, 404, { error: `no such endpoint: ${route}` });
  }
}

/** Made-up but stable weather: the same city always gets the same answer. */
function weather(city: string): Record<string, unknown> {
  let h = 0;
  for (const ch of city.toLowerCase()) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return {
    city,
    temperatureC: (h % 35) - 5,
    conditions: CONDITIONS[h % CONDITIONS.length],
    humidityPercent: 30 + (h % 60),
    observedAt: new Date().toISOString(),
  };
}

function stream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let sent = 0;
  const tick = (): void => {
    sent += 1;
    res.write(`id: ${sent}\nevent: tick\ndata: ${JSON.stringify({ n: sent, of: DEMO_STREAM_EVENTS, at: new Date().toISOString() })}\n\n`);
    if (sent >= DEMO_STREAM_EVENTS) {
      clearInterval(timer);
      res.end();
    }
  };
  const timer = setInterval(tick, DEMO_STREAM_INTERVAL_MS);
  res.once('close', () => clearInterval(timer));
  tick();
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The body as text, or undefined when it exceeds `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > limit) return undefined;
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
