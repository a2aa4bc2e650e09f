/** Loopback ports for tests: free ones to hand to a process, and closed ones to fail against. */
import { createServer, type Server } from 'node:net';

/** `count` distinct ports that were free a moment ago (all held open until each is known). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((server) => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

let closedUrls = 0;

/**
 * A loopback URL on which nothing listens: connecting is refused. Port 1 (tcpmux, privileged,
 * never served here) on a loopback address of its own for each call, so two are distinct. A port
 * that was free a moment ago is not enough: with test files running side by side, another
 * server took one (the upstream answered 404 where a refused connection was tested).
 */
export async function closedLoopbackUrl(): Promise<string> {
  closedUrls = (closedUrls % 250) + 1;
  return `http://127.0.0.${closedUrls + 1}:1`;
}
