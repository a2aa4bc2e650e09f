/**
 * One @fastify/http-proxy per upstream, each behind the `x402upstream` router constraint, so each
 * upstream keeps its own connection pool and timeout.
 *
 * Settlement timing (`settlement: after`): reply-from calls `onResponse` when the upstream's
 * status line and headers have arrived and before any body byte is sent to the client. The
 * settlement runs there: below 400 it settles and only then hands the upstream stream to
 * `reply.send`; on failure the stream is destroyed unread and the caller gets a 402. The body is
 * never buffered, so large bodies and server-sent events stay streams. A test pins this.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Config } from '../config/types.js';
import type { Checkout } from '../payments/checkout.js';
import { applySettlement, failureReceipt, settleTimed } from './settlement.js';
import { resourceUrl, sendChallenge, sendError } from './replies.js';
import type { RequestStates } from './request-state.js';
import { UPSTREAM_CONSTRAINT } from './routing.js';

/**
 * Request headers that never reach an upstream: payment instruments, a header official clients
 * add by mistake, method overrides (a request priced as the GET it is must not become the POST an
 * upstream's override middleware would turn it into), and path overrides (IIS URL Rewrite and some
 * frameworks route `/free` with `X-Original-URL: /paid` to the paid handler).
 */
const STRIPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'payment-signature',
  'x-payment',
  'x-payment-proof',
  'access-control-expose-headers',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-prefix',
]);
/** Response headers an upstream may not set: receipts and challenges are the gateway's to give. */
const STRIPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set(['payment-response', 'x-payment-response', 'payment-required']);

export interface ProxyDeps {
  readonly config: Config;
  readonly states: RequestStates;
  readonly checkout: Checkout;
}

export async function registerUpstreams(app: FastifyInstance, deps: ProxyDeps): Promise<void> {
  // Allowlist key headers are the gateway's credentials, never the upstream's: stripped from every
  // forwarded request, whichever route it matched (or none, under `unmatched: free`).
  const stripped: ReadonlySet<string> = new Set([
    ...STRIPPED_REQUEST_HEADERS,
    ...deps.config.routes.flatMap((route) => (route.allow ? [route.allow.apiKeyHeader] : [])),
  ]);
  for (const upstream of deps.config.upstreams.values()) {
    const { origin, pathname } = new URL(upstream.url);
    const credentials = Object.entries(upstream.headers).map(([name, value]) => [name.toLowerCase(), value] as const);
    await app.register(httpProxy, {
      upstream: origin,
      prefix: '/',
      // An upstream URL with a base path (`http://api:8080/v2`) prefixes every forwarded path.
      ...(pathname === '/' ? {} : { rewritePrefix: `${pathname}/` }),
      constraints: { [UPSTREAM_CONSTRAINT]: upstream.name },
      // The gateway logs one summary line per request itself.
      disableRequestLogging: true,
      // The paywall hook has already answered every request that may not pass.
      replyOptions: {
        timeout: upstream.timeoutMs,
        // Called as the request leaves for the upstream: the upstream latency is timed from here.
        rewriteRequestHeaders: (request, headers) => {
          const state = deps.states.get(request.raw as IncomingMessage);
          if (state) state.forwardedAt = performance.now();
          return upstreamRequestHeaders(http1(request), headers as IncomingHttpHeaders, stripped, credentials);
        },
        rewriteHeaders: (headers) => upstreamResponseHeaders(headers as IncomingHttpHeaders),
        onResponse: (request, reply, res) => {
          onUpstreamResponse(deps, http1(request), http1Reply(reply), res.statusCode ?? 502, res.stream).catch((err: unknown) => {
            discard(res.stream);
            dropUpstreamHeaders(http1Reply(reply));
            reply.send(err);
          });
        },
        onError: (reply, { error }) => {
          onUpstreamError(deps, http1(reply.request), http1Reply(reply), error).catch((err: unknown) => reply.send(err));
        },
      },
    });
  }
}

/**
 * reply-from types its callbacks for any server kind; the gateway serves HTTP/1 only (`Fastify()`
 * without `http2`), so its requests are the HTTP/1 ones the rest of the code is typed for.
 */
function http1(request: FastifyRequest<RouteGenericInterface, RawServerBase>): FastifyRequest {
  return request as FastifyRequest;
}
function http1Reply(reply: FastifyReply<RouteGenericInterface, RawServerBase>): FastifyReply {
  return reply as FastifyReply;
}

/**
 * The headers sent upstream. Copied name by name rather than spread and `delete`d: deleting
 * turns an object into a slow dictionary, and this runs for every request.
 *
 * `stripped`: lowercase names never forwarded. `credentials`: the upstream's configured headers,
 * lowercased; they win over the caller's.
 */
function upstreamRequestHeaders(
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
  out['x-forwarded-host'] = request.host;
  for (const [name, value] of credentials) out[name] = value;
  return out;
}

function upstreamResponseHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (!STRIPPED_RESPONSE_HEADERS.has(name)) out[name] = headers[name];
  }
  return out;
}

/** A paid answer must not be cached where an unpaid caller could be served it. */
function privateCacheControl(existing: unknown): string {
  const kept = typeof existing === 'string' ? existing.split(',').map((d) => d.trim()).filter((d) => d !== '' && d.toLowerCase() !== 'public' && d.toLowerCase() !== 'private') : [];
  return [...kept, 'private'].join(', ');
}

async function onUpstreamResponse(
  deps: ProxyDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  stream: NodeJS.ReadableStream & { destroy(): void },
): Promise<void> {
  const state = deps.states.get(request.raw);
  if (state?.forwardedAt !== undefined) state.upstreamSeconds = (performance.now() - state.forwardedAt) / 1000;
  if (reply.raw.destroyed) {
    // The caller hung up before the upstream answered: nobody to serve, nothing to charge.
    discard(stream);
    return;
  }
  if (state?.outcome === 'error') {
    // reply-from reported this answer as an error first (a status outside 100-599 becomes a 502
    // through onError) and then still hands it over: onUpstreamError owns the reply and the
    // payment; serving the body here would serve it unpaid.
    discard(stream);
    return;
  }
  const pending = state?.toSettle;
  if (state && pending) {
    state.toSettle = undefined;
    if (status >= 400) {
      // settlement: after, and the upstream failed: nothing is charged.
      await deps.checkout.release(pending, `upstream_status_${status}`);
      state.outcome = 'not_charged';
    } else {
      const outcome = await settleTimed(deps.checkout, state, pending);
      if (!applySettlement(state, pending, outcome)) {
        discard(stream);
        dropUpstreamHeaders(reply);
        const route = pending.request.route;
        if (route.price.kind !== 'priced') throw new Error('settled a free route');
        const url = state.target.ok ? resourceUrl(deps.config, request, state.target.path, state.target.search) : '';
        sendChallenge(request, reply, { config: deps.config, route, options: route.price.options, url, error: state.reason ?? 'unexpected_settle_error' }, failureReceipt(pending, outcome));
        return;
      }
    }
  }
  if (state?.receipt) reply.header(state.receipt.name, state.receipt.value);
  // Whoever got through a priced route (payer, proof, allowlisted caller) got something a shared
  // cache must not hand to the next, unpaid caller.
  const route = state?.match?.route;
  if (route?.price.kind === 'priced' && route.mode === 'enforce') {
    reply.header('cache-control', privateCacheControl(reply.getHeader('cache-control')));
  }
  reply.send(stream);
}

async function onUpstreamError(deps: ProxyDeps, request: FastifyRequest, reply: FastifyReply, error: Error): Promise<void> {
  const state = deps.states.get(request.raw);
  const timedOut = (error as { code?: string }).code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT';
  if (state) {
    state.outcome = 'error';
    state.reason = timedOut ? 'upstream_timeout' : 'upstream_unavailable';
    if (state.toSettle) {
      const pending = state.toSettle;
      state.toSettle = undefined;
      await deps.checkout.release(pending, state.reason);
    }
  }
  request.log.warn({ err: error }, 'upstream failed');
  // reply-from may have copied an upstream's headers already (an answer with an invalid status).
  dropUpstreamHeaders(reply);
  // settlement: before, and the upstream failed after the money moved: the caller keeps its receipt.
  if (state?.receipt) reply.header(state.receipt.name, state.receipt.value);
  sendError(reply, timedOut ? 'GW_ERR_UPSTREAM_TIMEOUT' : 'GW_ERR_UPSTREAM_UNAVAILABLE');
}

/**
 * Drops an upstream body unread. undici's body stream reports its own destruction as an `error`
 * event (UND_ERR_ABORTED); without a listener that would be an uncaught exception.
 */
function discard(stream: NodeJS.ReadableStream & { destroy(): void }): void {
  stream.on('error', () => {});
  stream.destroy();
}

/**
 * Before the gateway answers itself in place of the upstream: removes every header reply-from
 * copied from the upstream, keeping only the gateway's own CORS headers (a browser must be able to
 * read why it was refused) and `connection` (reply-from's `close` when the request body was not
 * consumed). Nothing else is set on the reply before the upstream answers.
 */
function dropUpstreamHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) {
    if (!name.startsWith('access-control-') && name !== 'connection') reply.removeHeader(name);
  }
}
