/**
 * What crosses the gateway in headers, both ways: what never reaches an upstream, what the gateway
 * adds (forwarding headers, the upstream's own credentials), what an upstream may not set, and
 * what a paid answer must not carry to a shared cache.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Request headers that never reach an upstream: payment instruments, a header official clients
 * add by mistake, method overrides (a request priced as the GET it is must not become the POST an
 * upstream's override middleware would turn it into), and path overrides (IIS URL Rewrite and some
 * frameworks route `/free` with `X-Original-URL: /paid` to the paid handler).
 */
export const STRIPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'payment-signature',
  'x-payment',
  'x-payment-proof',
  'x-payment-proof-signature',
  'access-control-expose-headers',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-prefix',
]);
/**
 * Response headers an upstream may not set: receipts and challenges are the gateway's to give;
 * `keep-alive` describes the upstream's connection to the gateway (node's 5 s), not the caller's
 * (server.keepAliveTimeoutMs), and would have clients drop connections the gateway keeps.
 */
const STRIPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set(['payment-response', 'x-payment-response', 'payment-required', 'keep-alive']);
/**
 * Cache directives for shared caches only (RFC 9213 `CDN-Cache-Control`, Fastly's and Akamai's
 * `Surrogate-Control`, vendor `*-CDN-Cache-Control`): a CDN obeys them over `Cache-Control:
 * private`, and would serve a paid body to everyone. Dropped from answers of priced routes.
 */
const SHARED_CACHE_HEADER = /^(?:surrogate-control|(?:[a-z0-9-]+-)?cdn-cache-control)$/;

/**
 * The headers sent upstream. Copied name by name rather than spread and `delete`d: deleting
 * turns an object into a slow dictionary, and this runs for every request.
 *
 * `stripped`: lowercase names never forwarded. `credentials`: the upstream's configured headers,
 * lowercased; they win over the caller's.
 */
export function upstreamRequestHeaders(
  request: FastifyRequest,
  headers: IncomingHttpHeaders,
  stripped: ReadonlySet<string>,
  credentials: readonly (readonly [string, string])[],
): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (!stripped.has(name)) out[name] = headers[name];
  }
  const priorFor = request.headers['x-forwarded-for'];
  out['x-forwarded-for'] = priorFor ? `${String(priorFor)}, ${request.ip}` : request.ip;
  out['x-forwarded-proto'] = request.protocol;
  // The host that was routed on (routing.ts checked it is one host), never a caller's own
  // X-Forwarded-Host: an upstream that picks a tenant from it must see the host that was priced.
  // (undefined for an HTTP/1.0 request without Host: undici sends no such header).
  out['x-forwarded-host'] = request.raw.headers.host;
  for (const [name, value] of credentials) out[name] = value;
  return out;
}

export function upstreamResponseHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (!STRIPPED_RESPONSE_HEADERS.has(name)) out[name] = headers[name];
  }
  return out;
}

/**
 * A paid answer must not be cached where an unpaid caller could be served it: `Cache-Control`
 * becomes `private`, and directives for shared caches only are dropped.
 */
export function keepFromSharedCaches(reply: FastifyReply): void {
  reply.header('cache-control', privateCacheControl(reply.getHeader('cache-control')));
  for (const name of Object.keys(reply.getHeaders())) if (SHARED_CACHE_HEADER.test(name)) reply.removeHeader(name);
}

function privateCacheControl(existing: unknown): string {
  const kept = typeof existing === 'string' ? existing.split(',').map((d) => d.trim()).filter((d) => d !== '' && d.toLowerCase() !== 'public' && d.toLowerCase() !== 'private') : [];
  return [...kept, 'private'].join(', ');
}

/**
 * Before the gateway answers itself in place of the upstream: removes every header reply-from
 * copied from the upstream, keeping only the gateway's own CORS headers (a browser must be able to
 * read why it was refused) and `connection` (reply-from's `close` when the request body was not
 * consumed). Nothing else is set on the reply before the upstream answers.
 */
export function dropUpstreamHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) {
    if (!name.startsWith('access-control-') && name !== 'connection') reply.removeHeader(name);
  }
}
