/**
 * The `fetch` viem's JSON-RPC transport uses, over undici connection pools.
 *
 * A paid request makes seven to nine JSON-RPC calls, and through the global `fetch` each one pays
 * for web streams, `Headers` and `Request` objects: about 1 ms of CPU per call, the largest block
 * in the gateway's profile of a paid request. `Pool.request` reads the small JSON answer as one
 * string; only the `Response` viem expects is built around it. viem's own error handling is
 * unchanged: a connection failure still surfaces with its socket error code (so "never reached
 * the node" stays provable), and its timeout still aborts the request through `signal`.
 */
import { Pool } from 'undici';

/** Connections kept per RPC origin: settlements and verifications in flight share them. */
export const RPC_POOL_CONNECTIONS = 16;

export interface RpcFetch {
  readonly fetch: typeof fetch;
  /** Closes every pool; pending calls fail. */
  close(): Promise<void>;
}

export function createRpcFetch(): RpcFetch {
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: RPC_POOL_CONNECTIONS });
      pools.set(origin, pool);
    }
    return pool;
  };

  const rpcFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (typeof init?.body !== 'string') throw new TypeError('rpc fetch: JSON-RPC bodies are strings');
    const res = await poolFor(url.origin).request({
      path: url.pathname + url.search,
      method: 'POST',
      headers: plainHeaders(init.headers),
      body: init.body,
      signal: init.signal ?? null,
    });
    const text = await res.body.text();
    const contentType = res.headers['content-type'];
    return new Response(text, {
      status: res.statusCode,
      headers: typeof contentType === 'string' ? { 'content-type': contentType } : {},
    });
  };

  return {
    fetch: rpcFetch,
    close: async () => {
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}

/** viem passes a plain object of strings; anything else is normalised through `Headers`. */
function plainHeaders(headers: RequestInit['headers']): Record<string, string> {
  if (headers === undefined) return {};
  if (headers instanceof Headers || Array.isArray(headers)) return Object.fromEntries(new Headers(headers));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = typeof value === 'string' ? value : value.join(', ');
  return out;
}
