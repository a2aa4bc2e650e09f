/**
 * A hosted JSON-RPC provider in miniature: it answers only at a secret path and query, as an
 * Alchemy, Infura or QuickNode URL carries its API key (`/v2/KEY`, `?key=KEY`), and forwards what
 * it accepts to a real node. It can be switched to fail the way providers do (a 5xx, a hang past
 * the caller's timeout, a refused connection), for every method or only some. Its error pages
 * echo the request target, as many servers' do (Express's "Cannot POST /v2/KEY"): whatever
 * quotes a provider's error body quotes the key.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type RpcFault = 'status_500' | 'hang' | 'refuse';

export interface RpcProxyOptions {
  /** The node the proxy forwards to. */
  readonly target: string;
  /** The request target the proxy answers at, e.g. `/v2/KEY?key=OTHER`. */
  readonly secretTarget: string;
  /** `user:password@` put in front of the host in `url` (the proxy ignores the basic auth it brings). */
  readonly userinfo?: string;
}

export interface RpcProxy {
  /** The endpoint as an operator configures it: userinfo, secret path and query included. */
  readonly url: string;
  /** JSON-RPC methods received at the secret target, in order (each call of a batch). */
  readonly methods: readonly string[];
  /** Fails from now on: every call, or only calls of `methods` (not for `refuse`, which drops the listener). */
  fail(fault: RpcFault, methods?: readonly string[]): Promise<void>;
  /** Forwards everything again. */
  heal(): Promise<void>;
  close(): Promise<void>;
}

export async function startRpcProxy(options: RpcProxyOptions): Promise<RpcProxy> {
  const methods: string[] = [];
  const hung = new Set<ServerResponse>();
  let fault: { readonly kind: Exclude<RpcFault, 'refuse'>; readonly methods: readonly string[] | undefined } | undefined;

  const echo = (req: IncomingMessage, res: ServerResponse, status: number) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!DOCTYPE html><html><body><pre>Cannot ${req.method ?? 'POST'} ${req.url ?? '/'}</pre></body></html>`);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url !== options.secretTarget) return echo(req, res, 401);
      const body = Buffer.concat(chunks).toString('utf8');
      const called = methodsOf(body);
      methods.push(...called);
      if (fault !== undefined && (fault.methods === undefined || called.some((m) => fault?.methods?.includes(m)))) {
        if (fault.kind === 'status_500') return echo(req, res, 500);
        hung.add(res);
        return;
      }
      void forward(options.target, body).then(
        ({ status, text }) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(text);
        },
        () => echo(req, res, 502),
      );
    });
  });

  await listen(server, 0);
  const port = (server.address() as AddressInfo).port;
  let listening = true;
  const dropConnections = () => {
    for (const res of hung) res.destroy();
    hung.clear();
    server.closeAllConnections();
  };
  const stopListening = async () => {
    if (!listening) return;
    listening = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      dropConnections();
    });
  };

  return {
    url: `http://${options.userinfo === undefined ? '' : `${options.userinfo}@`}127.0.0.1:${port}${options.secretTarget}`,
    methods,
    async fail(kind, only) {
      if (kind === 'refuse') {
        fault = undefined;
        await stopListening();
        return;
      }
      fault = { kind, methods: only };
    },
    async heal() {
      fault = undefined;
      for (const res of hung) res.destroy();
      hung.clear();
      if (!listening) {
        await listen(server, port);
        listening = true;
      }
    },
    close: stopListening,
  };
}

/** The JSON-RPC methods a body calls: one, or each element of a batch ('' for what is not a call). */
function methodsOf(body: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return ['']; // Not JSON: the node will say so.
  }
  const methodOf = (call: unknown): string =>
    typeof call === 'object' && call !== null && 'method' in call && typeof call.method === 'string' ? call.method : '';
  return Array.isArray(parsed) ? parsed.map(methodOf) : [methodOf(parsed)];
}

async function forward(target: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, text: await res.text() };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
