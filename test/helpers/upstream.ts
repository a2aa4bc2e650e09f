/**
 * A real upstream API on a loopback port, recording what reaches it. The gateway under test
 * proxies to it; tests assert on what it saw (paths, headers, bodies) as much as on answers.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface TestUpstream {
  readonly url: string;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/** Size of the body GET /big streams. */
export const BIG_BODY_BYTES = 8 * 1024 * 1024;

export async function startUpstream(): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const status = /^\/(?:.*\/)?status\/(\d{3})$/.exec(path);
      if (status) {
        res.writeHead(Number(status[1]), { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: Number(status[1]) }));
      } else if (path.endsWith('/big')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BODY_BYTES) });
        const chunk = Buffer.alloc(64 * 1024, 7);
        let sent = 0;
        const pump = () => {
          while (sent < BIG_BODY_BYTES) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else if (path.endsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let n = 0;
        const timer = setInterval(() => {
          res.write(`data: tick ${n}\n\n`);
          if (++n === 3) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
        res.write(': open\n\n');
      } else if (path.endsWith('/slow')) {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"slow":true}');
        }, 2000);
      } else if (path.endsWith('/spoof')) {
        res.writeHead(200, { 'content-type': 'application/json', 'payment-response': 'forged', 'x-payment-response': 'forged' });
        res.end('{"spoof":true}');
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60' });
        res.end(JSON.stringify({ method: req.method, url: req.url, bytes: body.length }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
