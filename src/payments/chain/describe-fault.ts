/**
 * A fault said in the gateway's own words, for our error messages, settlement results and logs.
 *
 * Never a transport error's own text: viem's messages print the endpoint's whole URL (its path
 * and query hold the provider's API key) and the request body, `details` quote the node's or a
 * proxy's answer (error pages often echo the request target: the key again), and undici's
 * messages are a library's prose. The fault is classified instead (timed out, an HTTP status, a
 * JSON-RPC refusal by kind, a socket code) and the endpoint named by its origin:
 *
 *   timed out (https://base-mainnet.g.alchemy.com)
 *   refused by the node: JSON-RPC error -32000, nonce conflict (https://mainnet.base.org)
 *
 * An error that is no network fault (the store's, a bug) keeps its message, URLs cut to origins.
 * `errorText` is the same rule for a log line's error (log.ts), where our own messages stand.
 */
import { BaseError, HttpRequestError, RpcRequestError, TimeoutError } from 'viem';
import { GatewayError, InfrastructureError } from '../../errors.js';
import { clip, errorChain, errorCode, NONCE_CONFLICT } from './rpc-errors.js';
import { originsOnly, urlOrigin } from './url-origin.js';

/** Socket and undici codes, in words; the code itself follows them. */
const CONNECTION_WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'host unreachable',
  EADDRNOTAVAIL: 'address not available',
  ETIMEDOUT: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out',
  UND_ERR_BODY_TIMEOUT: 'timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_ABORTED: 'aborted',
  CERT_HAS_EXPIRED: 'TLS certificate refused',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate refused',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate refused',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate refused',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate refused',
};

/**
 * What a node's JSON-RPC refusal is about, from its own words (first match wins); the words are
 * never quoted, since a provider's may name the key or the account.
 */
const NODE_REFUSALS: readonly (readonly [RegExp, string])[] = [
  [NONCE_CONFLICT, 'nonce conflict'],
  [/insufficient funds/i, 'insufficient funds for gas'],
  [/already known/i, 'already known'],
  [/underpriced|fee cap|max fee per gas|max priority fee/i, 'fee too low'],
  [/intrinsic gas too low|gas limit/i, 'gas limit refused'],
  [/out ?of ?gas/i, 'out of gas'],
  [/revert/i, 'execution reverted'],
  [/rate.?limit|limit (exceeded|reached)|too many requests|capacity|quota/i, 'rate limited'],
  [/invalid sender/i, 'invalid sender'],
  [/method .*(not found|not supported|not available|does not exist)/i, 'method not available'],
];

/** An errno name (`ECONNREFUSED`) or an undici code: not a store's SQLSTATE, not Node's `ERR_...`. */
function isConnectionCode(code: string): boolean {
  return code in CONNECTION_WORDS || /^E[A-Z]+$/.test(code) || code.startsWith('UND_ERR_');
}

/**
 * A network fault whose own text must not be quoted: a viem error (its message prints the URL, the
 * request body and the node's answer), or a socket or undici error.
 */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof BaseError) return true;
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' && isConnectionCode(err.code);
}

/**
 * What may be said of `err` itself: our own errors' messages (already in our words) and any other
 * error's with every URL in it cut to its origin, except a network error and a library's wrapper
 * of one (reply-from repeats undici's message), which are said in our words (`describeFault`).
 */
export function errorText(err: unknown): string {
  const ours = err instanceof GatewayError || err instanceof InfrastructureError;
  if (isNetworkError(err) || (!ours && errorChain(err).some(isNetworkError))) return describeFault(err);
  return originsOnly(err instanceof Error ? err.message : String(err));
}

/** Longest message of a non-network error kept. */
const MAX_OTHER_MESSAGE = 200;

/** `err` in our words, naming the endpoint it came from by origin when one is known. */
export function describeFault(err: unknown): string {
  const chain = errorChain(err);
  const what = faultWords(chain);
  const where = endpointOf(chain);
  return where === undefined ? what : `${what} (${where})`;
}

function faultWords(chain: readonly unknown[]): string {
  if (chain.some((e) => e instanceof TimeoutError)) return 'timed out';
  const refusal = chain.find((e): e is RpcRequestError => e instanceof RpcRequestError);
  if (refusal !== undefined) {
    const kind = NODE_REFUSALS.find(([pattern]) => pattern.test(refusal.details))?.[1];
    return `refused by the node: JSON-RPC error ${refusal.code}${kind === undefined ? '' : `, ${kind}`}`;
  }
  const status = chain.find((e): e is HttpRequestError => e instanceof HttpRequestError && e.status !== undefined)?.status;
  if (status !== undefined) return status >= 200 && status < 300 ? 'the answer is not JSON-RPC' : `answered HTTP ${status}`;
  const first = chain[0];
  // UND_ERR_SOCKET says less than the socket error it wraps, when there is one.
  const code = errorCode(first, (c) => c !== 'UND_ERR_SOCKET' && isConnectionCode(c)) ?? errorCode(first, isConnectionCode);
  if (code !== undefined) return `${CONNECTION_WORDS[code] ?? 'connection failed'} (${code})`;
  if (first instanceof BaseError) return `failed (${first.name})`;
  if (first instanceof Error) return clip(`${first.name}: ${originsOnly(first.message)}`, MAX_OTHER_MESSAGE);
  return 'failed';
}

/** The origin of the first endpoint an error in the chain names (viem's transport errors carry `url`). */
function endpointOf(chain: readonly unknown[]): string | undefined {
  for (const e of chain) {
    if (typeof e === 'object' && e !== null && 'url' in e && typeof e.url === 'string') return urlOrigin(e.url);
  }
  return undefined;
}
