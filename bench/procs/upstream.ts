/**
 * The upstream API every proxy under test forwards to: paths ending in `/big` answer 64 KiB, every
 * other path a small JSON document. Nothing is recorded, so its memory stays flat under load.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BIG_BODY, SMALL_BODY } from '../lib/bodies.js';
import { serveChild } from './serve-child.js';

await serveChild(async () => {
  const small = { 'content-type': 'application/json', 'content-length': String(SMALL_BODY.length) };
  const big = { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BODY.length) };
  const server = createServer((req, res) => {
    req.resume();
    const isBig = req.url !== undefined && /\/big(?:\?|$)/.test(req.url);
    res.writeHead(200, isBig ? big : small);
    res.end(isBig ? BIG_BODY : SMALL_BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
});
