/**
 * One @fastify/http-proxy per upstream, each behind the `x402upstream` router constraint, so each
 * upstream keeps its own connection pool and timeout.
 *
 * Settlement timing (`settlement: after`): reply-from calls `onResponse` when the upstream's
 * status line and headers have arrived and before any body byte is sent to the client. The
 * settlement runs there: below 400 it settles and only then hands the upstream stream to
 * `reply.send`; on failure the stream is destroyed unread and the caller gets a 402. The body is
 * never buffered, so large bodies and server-sent events stay streams. A test pins this.
 *
 * Once a paid request has been forwarded, the upstream's status line decides, whether or not the
 * caller is still there: below 400 it is settled (the work was done), else released. A caller who
 * hangs up after forwarding therefore cannot have a side-effecting call run again and again on
 * one authorization. reply-from skips `onResponse` for a request whose caller is gone, so that
 * case is caught where reply-from reports every upstream answer: its `retryDelay` callback (which
 * also turns its retries off: a retried request may have done its work already).
 */
import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Config } from '../config/types.js';
import type { Checkout } from '../payments/checkout.js';
import { GATEWAY_REASON, upstreamStatusReason } from '../protocol/reasons.js';
import { BoundedBody, bodyLimitOf, boundedBody } from './body-limit.js';
import { mayForward, refuseFormOverride } from './forward-guard.js';
import { IdleWatch } from './idle-timeout.js';
import { formKind } from './method-override.js';
import type { PendingPayment } from './pending-payment.js';
import { resourceUrl, sendError, sendSettlementFailure } from './replies.js';
import { paymentOf, type RequestStates } from './request-state.js';
import { UPSTREAM_CONSTRAINT } from './routing.js';
import { dropUpstreamHeaders, keepFromSharedCaches, STRIPPED_REQUEST_HEADERS, upstreamRequestHeaders, upstreamResponseHeaders } from './upstream-headers.js';

export interface ProxyDeps {
  readonly config: Config;
  readonly states: RequestStates;
  readonly checkout: Checkout;
  /** The summary of a request whose caller left before its payment was decided, once it is. */
  readonly summariseLate: (request: FastifyRequest) => void;
}

/**
 * The request a forwarded header set belongs to, for `retryDelay` (see UpstreamAttempt): a
 * non-enumerable symbol on the header object, so it never reaches the wire; a WeakMap from header
 * sets to requests would add an ephemeron per request for the garbage collector to walk (see
 * RequestStates).
 */
const FORWARDED_FOR = Symbol('x402-gateway forwarded request');

/**
 * What reply-from really hands `retryDelay` (its typings say otherwise): the options of the
 * upstream request, whose `headers` is the object `rewriteRequestHeaders` returned, and the
 * upstream's answer, if there was one.
 */
interface UpstreamAttempt {
  readonly req: { readonly headers: IncomingHttpHeaders & { readonly [FORWARDED_FOR]?: FastifyRequest } };
  readonly res?: { readonly statusCode: number };
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
    const idle: AnswerWatches = {
      answer: new IdleWatch(upstream.idleTimeoutMs),
      eventStream: upstream.sseIdleTimeoutMs === undefined ? undefined : new IdleWatch(upstream.sseIdleTimeoutMs),
    };
    await app.register(httpProxy, {
      upstream: origin,
      prefix: '/',
      // An upstream URL with a base path (`http://api:8080/v2`) prefixes every forwarded path.
      ...(pathname === '/' ? {} : { rewritePrefix: `${pathname}/` }),
      constraints: { [UPSTREAM_CONSTRAINT]: upstream.name },
      // The gateway logs one summary line per request itself.
      disableRequestLogging: true,
      // Timeouts live on the pool, not per request: reply-from's per-request `timeout` is also
      // undici's bodyTimeout, which cut a quiet event stream after it had been paid for. The
      // silence between body bytes is watched per answer instead (idle-timeout.ts).
      undici: { headersTimeout: upstream.timeoutMs, bodyTimeout: 0 },
      // The last check before a request leaves: the paywall has answered every request that may
      // not pass, and this makes sure no such request goes on if that answer is still on its way.
      preHandler: (request, reply, done) => {
        const req = http1(request);
        const res = http1Reply(reply);
        const state = deps.states.get(req.raw);
        if (!mayForward(state, req, res)) return;
        const forward = () => {
          const limit = bodyLimitOf(deps.config, state);
          // A chunked form body read for the check below is a Buffer now; else the body streams, bounded.
          if (Buffer.isBuffer(req.body) && req.body.length > limit) return void refuseBodyTooLarge(deps, req, res).catch(done);
          req.body = boundedBody(req.raw, req.body, limit);
          done();
        };
        // Only a form POST where an override could matter waits for its body to be read.
        const kind = formKind(req.method, req.headers['content-type']);
        if (kind === undefined) return forward();
        refuseFormOverride(deps, req, res, kind).then((refused) => refused || forward(), done);
      },
      replyOptions: {
        retryDelay: (details) => {
          const attempt = details as unknown as UpstreamAttempt;
          const request = attempt.req.headers[FORWARDED_FOR];
          if (request && attempt.res) onStatusLineWithoutCaller(deps, request, attempt.res.statusCode);
          return null;
        },
        // Called as the request leaves for the upstream: the upstream latency is timed from here.
        rewriteRequestHeaders: (request, headers) => {
          const state = deps.states.get(request.raw as IncomingMessage);
          if (state) {
            state.forwardedAt = performance.now();
            paymentOf(state)?.markForwarded();
          }
          const out = upstreamRequestHeaders(http1(request), headers as IncomingHttpHeaders, stripped, credentials);
          return Object.defineProperty(out, FORWARDED_FOR, { value: http1(request) });
        },
        rewriteHeaders: (headers) => upstreamResponseHeaders(headers as IncomingHttpHeaders),
        onResponse: (request, reply, res) => {
          // reply-from types the body loosely; with its undici transport it is undici's body Readable.
          onUpstreamResponse(deps, idle, http1(request), http1Reply(reply), res.statusCode ?? 502, res.stream as Readable).catch((err: unknown) => {
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

/** One upstream's watches of the silence in its answers' bodies; event streams may have none. */
interface AnswerWatches {
  readonly answer: IdleWatch;
  readonly eventStream: IdleWatch | undefined;
}

async function onUpstreamResponse(
  deps: ProxyDeps,
  idle: AnswerWatches,
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  stream: Readable,
): Promise<void> {
  const state = deps.states.get(request.raw);
  if (state?.forwardedAt !== undefined) state.upstreamSeconds = (performance.now() - state.forwardedAt) / 1000;
  if (state?.answer !== undefined) {
    // The gateway answered already: reply-from reports an answer with a status outside 100-599
    // as an error first (onUpstreamError, a 502) and then still hands it over. Serving the body
    // here would serve it unpaid.
    discard(stream);
    return;
  }
  const payment = paymentOf(state);
  if (reply.raw.destroyed) {
    // The caller hung up after the request was forwarded: nobody to serve, but the upstream's
    // answer still decides the payment.
    discard(stream);
    if (payment) await decideWithoutCaller(deps, request, payment, status);
    return;
  }
  if (payment && !payment.decided) {
    // settlement: after. Below 400 the money moves before the first body byte; else nothing is charged.
    const outcome = status < 400 ? await payment.settle() : await payment.release(upstreamStatusReason(status));
    if (reply.raw.destroyed) {
      // The caller left while the payment was being decided: its summary waited for this.
      discard(stream);
      deps.summariseLate(request);
      return;
    }
    if (outcome.kind === 'failed') {
      discard(stream);
      dropUpstreamHeaders(reply);
      const url = state?.target.ok ? resourceUrl(deps.config, request, state.target.path, state.target.search) : payment.authorized.request.resourceUrl;
      sendSettlementFailure(request, reply, payment, url, outcome.reason, state);
      return;
    }
  }
  const receipt = payment?.receiptHeader();
  if (receipt) reply.header(receipt.name, receipt.value);
  // Whoever got through a priced route (payer, proof, allowlisted caller) got something a shared
  // cache must not hand to the next, unpaid caller.
  const route = state?.match?.route;
  if (route?.price.kind === 'priced' && route.mode === 'enforce') {
    keepFromSharedCaches(reply);
  }
  const eventStream = String(reply.getHeader('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
  const watch = eventStream ? idle.eventStream : idle.answer;
  const raw = reply.raw;
  reply.send(watch ? watch.watch(stream, () => raw.socket?.bytesWritten ?? 0) : stream);
}

/**
 * reply-from's `retryDelay` saw the upstream's status line. When the caller has gone (reply-from
 * then skips `onResponse`, the condition below is its own), the payment is decided here.
 */
function onStatusLineWithoutCaller(deps: ProxyDeps, request: FastifyRequest, status: number): void {
  if (!request.raw.aborted) return;
  const payment = paymentOf(deps.states.get(request.raw));
  if (!payment) return;
  decideWithoutCaller(deps, request, payment, status).catch((err: unknown) => request.log.error({ err }, 'could not settle the payment of a request whose caller left'));
}

/**
 * The caller left after its paid request was forwarded. Below 400 the upstream did the work, so
 * the payment is settled (the receipt row says the answer was not delivered); else released.
 */
async function decideWithoutCaller(deps: ProxyDeps, request: FastifyRequest, payment: PendingPayment, status: number): Promise<void> {
  if (payment.decided) return;
  await (status < 400 ? payment.settle(GATEWAY_REASON.clientClosed) : payment.release(upstreamStatusReason(status)));
  deps.summariseLate(request);
}

async function onUpstreamError(deps: ProxyDeps, request: FastifyRequest, reply: FastifyReply, error: Error): Promise<void> {
  // Not the upstream's failure: the caller's chunked body went over the limit, and undici aborted
  // the upstream request for it (body-limit.ts).
  if (request.body instanceof BoundedBody && request.body.overLimit) return refuseBodyTooLarge(deps, request, reply);
  const state = deps.states.get(request.raw);
  const timedOut = (error as { code?: string }).code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT';
  const reason = timedOut ? GATEWAY_REASON.upstreamTimeout : GATEWAY_REASON.upstreamUnavailable;
  if (state) state.answer = { kind: 'error', reason };
  const payment = paymentOf(state);
  if (payment && !payment.decided) {
    await payment.release(reason);
    if (reply.raw.destroyed || request.raw.aborted) deps.summariseLate(request);
  }
  request.log.warn({ err: error }, 'upstream failed');
  // reply-from may have copied an upstream's headers already (an answer with an invalid status).
  dropUpstreamHeaders(reply);
  // settlement: before, and the upstream failed after the money moved: the caller keeps its receipt.
  const receipt = payment?.receiptHeader();
  if (receipt) reply.header(receipt.name, receipt.value);
  sendError(reply, timedOut ? 'GW_ERR_UPSTREAM_TIMEOUT' : 'GW_ERR_UPSTREAM_UNAVAILABLE');
}

/**
 * 413 for a body over its route's limit, found as it streamed: a reserved payment is released
 * (the upstream got no complete request), a settled one keeps its receipt; the connection is
 * closed, the rest of the body unread.
 */
async function refuseBodyTooLarge(deps: ProxyDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const state = deps.states.get(request.raw);
  if (state) state.answer = { kind: 'invalid', reason: GATEWAY_REASON.bodyTooLarge };
  const payment = paymentOf(state);
  if (payment && !payment.decided) {
    await payment.release(GATEWAY_REASON.bodyTooLarge);
    if (reply.raw.destroyed || request.raw.aborted) deps.summariseLate(request);
  }
  dropUpstreamHeaders(reply);
  const receipt = payment?.receiptHeader();
  if (receipt) reply.header(receipt.name, receipt.value);
  reply.header('connection', 'close');
  sendError(reply, 'GW_ERR_BODY_TOO_LARGE');
}

/**
 * Drops an upstream body unread. undici's body stream reports its own destruction as an `error`
 * event (UND_ERR_ABORTED); without a listener that would be an uncaught exception.
 */
function discard(stream: NodeJS.ReadableStream & { destroy(): void }): void {
  stream.on('error', () => {});
  stream.destroy();
}

