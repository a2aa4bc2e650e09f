/**
 * viem transports that send JSON-RPC over pooled undici connections.
 *
 * A paid request makes five to nine JSON-RPC calls. viem's `http` transport builds a `Request`,
 * `Headers`, an `AbortController` and a web-stream `Response` for each, through `fetch` (even a
 * custom `fetchFn` must return a `Response`): about 175 µs of CPU per `eth_call` against 80 µs
 * through a `custom` transport over `Pool.request` (.scratch measurement, see bench/README.md).
 * The transport is `custom` only in viem's sense: everything above it (actions, formatters,
 * `fallback`, error mapping by JSON-RPC code) is viem's, and its failures are the same error
 * classes the `http` transport throws, so `rpc-errors.ts` reads them unchanged:
 *
 *   - the node answered with a JSON-RPC error → `RpcRequestError` (viem maps its code)
 *   - a non-2xx status                        → `HttpRequestError` with `status`
 *   - no answer in time                       → `TimeoutError` (the node may have acted on it)
 *   - the connection failed                   → `HttpRequestError` whose `cause` is the socket
 *                                               error with its code (ECONNREFUSED, ...), which
 *                                               is what proves "never reached the node"
 */
import { Pool } from 'undici';
import { custom, HttpRequestError, RpcRequestError, TimeoutError, type Transport } from 'viem';
import { errorCode } from './rpc-errors.js';

/** Connections kept per RPC origin: settlements and verifications in flight share them. */
export const RPC_POOL_CONNECTIONS = 16;
/**
 * How long a new connection may take. undici's default is 10 s, longer than a call's whole
 * timeout; a connect timeout is provably "never sent" (connection-errors.ts), so it fails fast.
 */
export const RPC_CONNECT_TIMEOUT_MS = 5_000;

/** One pool per RPC origin, shared by every transport built from it. Close it at shutdown. */
export class RpcConnections {
  readonly #pools = new Map<string, Pool>();
  #nextId = 1;

  /** A viem transport for one endpoint; `timeoutMs` bounds each call. */
  transport(url: string, timeoutMs: number): Transport {
    const endpoint = new URL(url);
    const pool = this.#pool(endpoint.origin);
    const path = endpoint.pathname + endpoint.search;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (endpoint.username !== '' || endpoint.password !== '') {
      // Like viem's http transport: credentials in the URL become basic auth.
      const credentials = `${decodeURIComponent(endpoint.username)}:${decodeURIComponent(endpoint.password)}`;
      headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    // What errors name as the endpoint: its origin only, since the path and query of a hosted
    // node's URL hold the API key (`/v2/KEY`). Nor do they quote a failed answer's body: error
    // pages often echo the request target, the key again (describe-fault.ts says why in full).
    const shownUrl = endpoint.origin;

    const request = async ({ method, params }: { method: string; params?: unknown }): Promise<unknown> => {
      const body = { jsonrpc: '2.0', id: this.#nextId++, method, params };
      let statusCode: number;
      let text: string;
      try {
        const res = await pool.request({
          path,
          method: 'POST',
          headers,
          body: JSON.stringify(body),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        statusCode = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        if (isTimeout(err)) throw new TimeoutError({ body, url: shownUrl });
        throw new HttpRequestError({ body, url: shownUrl, cause: err as Error, details: connectionFailure(err) });
      }
      if (statusCode < 200 || statusCode > 299) {
        throw new HttpRequestError({ body, url: shownUrl, status: statusCode, details: `${text.length} characters, not quoted` });
      }
      let answer: { result?: unknown; error?: { code: number; message: string; data?: unknown } };
      try {
        answer = JSON.parse(text) as typeof answer;
      } catch {
        throw new HttpRequestError({ body, url: shownUrl, status: statusCode, details: `not JSON (${text.length} characters, not quoted)` });
      }
      if (answer.error !== undefined && answer.error !== null) throw new RpcRequestError({ body, error: answer.error, url: shownUrl });
      return answer.result;
    };
    return custom({ request }, { key: 'undici', name: 'JSON-RPC over undici', retryCount: 0 });
  }

  /** Closes every pool; calls in flight fail. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  #pool(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: RPC_POOL_CONNECTIONS, connect: { timeout: RPC_CONNECT_TIMEOUT_MS } });
      this.#pools.set(origin, pool);
    }
    return pool;
  }
}

/** undici's "no answer in time" codes: the node may have received the request and acted on it. */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function isTimeout(err: unknown): boolean {
  return errorCode(err, (code) => TIMEOUT_CODES.has(code)) !== undefined;
}

/** The socket or undici code of a failed connection (the code, not undici's prose about it). */
function connectionFailure(err: unknown): string {
  return `connection failed: ${errorCode(err, (code) => code !== 'UND_ERR_SOCKET') ?? errorCode(err) ?? 'no code'}`;
}
