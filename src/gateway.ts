/**
 * The composition root of one config: config + adapters -> a fastify app for the public listener.
 * Nothing listens here. The app does not own a server either: `handle` is its request handler,
 * which `server.ts` points the one public server at, so a reload can swap apps atomically while
 * requests in flight finish on the app (and config) they started with.
 */
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config, RouteConfig } from './config/types.js';
import { errorBody, GatewayError, InfrastructureError } from './errors.js';
import { makePaywall } from './http/paywall.js';
import { registerUpstreams } from './http/proxy.js';
import { resourceUrl, sendError } from './http/replies.js';
import { RequestStates, type RequestState } from './http/request-state.js';
import { makeRewriteUrl, UPSTREAM_CONSTRAINT, upstreamConstraint } from './http/routing.js';
import type { GatewayMetrics } from './metrics.js';
import { Checkout, type CheckoutDeps } from './payments/checkout.js';
import { buildDiscovery } from './protocol/discovery.js';
import type { TokenBuckets } from './limits/token-buckets.js';

/** Seconds a client should wait before retrying after a chain or ledger fault. */
export const RETRY_AFTER_SECONDS = 5;

/** Headers browsers may read from our answers: the challenge, the receipts, the seed's info headers, a proof route's message to sign. */
const EXPOSED_HEADERS = [
  'PAYMENT-REQUIRED',
  'PAYMENT-RESPONSE',
  'X-PAYMENT-RESPONSE',
  'X-Payment-Address',
  'X-Payment-Amount',
  'X-Payment-Currency',
  'X-Payment-Chain',
  'X-Payment-Proof-Message',
];

export interface GatewayDeps extends CheckoutDeps {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** Per payer, paid requests forwarded and not charged; kept across reloads (server.ts). */
  readonly unchargedForwards: TokenBuckets;
}

export interface GatewayApp {
  readonly config: Config;
  readonly app: FastifyInstance;
  /** The request handler of this app; the public server calls it. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Builds the public app of one config: routing, CORS, paywall, proxies, metrics. */
export async function buildGateway(config: Config, deps: GatewayDeps): Promise<GatewayApp> {
  const states = new RequestStates();
  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    // The gateway writes its own one-line summary per request (the onResponse hook below).
    logController: new LogController({ disableRequestLogging: true }),
    // Ledger rows are keyed by request id: never let a client choose it.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    rewriteUrl: makeRewriteUrl(config, states),
    routerOptions: { constraints: { [UPSTREAM_CONSTRAINT]: upstreamConstraint(config, states) } },
    trustProxy: trustProxyOption(config.trustProxy),
    // The app never listens: server.ts owns the socket and calls `handle`.
    serverFactory: (handler) => {
      handle = handler;
      return createServer();
    },
  };
  const app = Fastify(options);
  const checkout = new Checkout(deps);

  // CORS first, so preflights are answered before the paywall and are never charged. Request
  // headers a preflight asks for are reflected (payment headers included).
  await app.register(cors, { origin: '*', exposedHeaders: EXPOSED_HEADERS, maxAge: 600 });
  const unchargedLimit = config.limits.unchargedForwards;
  app.addHook('onRequest', makePaywall({
    config,
    states,
    checkout,
    unchargedWaitSeconds: (payer) => deps.unchargedForwards.waitSeconds(payer.toLowerCase(), unchargedLimit, deps.clock.nowMs()),
  }));
  const accessLog = summaryLoggers(deps.logger);
  /** Exactly one summary line and one count per request, however it ended. */
  const summarise = (request: FastifyRequest, status: number, ms: number | undefined): void => {
    const state = states.get(request.raw);
    if (state) {
      if (state.summarised) return;
      state.summarised = true;
      observe(deps.metrics, state, status);
    }
    accessLog(state?.match?.route).info(
      {
        reqId: request.id,
        method: request.method,
        path: state?.target.ok ? state.target.path : request.url,
        status,
        outcome: state?.outcome,
        payer: state?.payer,
        tx: state?.transaction,
        reason: state?.reason,
        ms: ms === undefined ? undefined : Math.round(ms),
      },
      'request',
    );
  };
  // Callback style, not async: one promise fewer on every request.
  app.addHook('onResponse', (request, reply, done) => {
    summarise(request, reply.statusCode, reply.elapsedTime);
    done();
  });
  // A caller that hangs up before its answer gets no onResponse; it is summarised here. A payment
  // still waiting to settle is released (not charged) by the paywall's own close listener, unless
  // the request was forwarded: then the upstream's answer decides, and the proxy summarises it.
  app.addHook('onRequestAbort', (request, done) => {
    const state = states.get(request.raw);
    if (state?.toSettle) {
      if (state.forwardedAt !== undefined) return done();
      state.outcome = 'not_charged';
      state.reason = 'client_closed';
    }
    summarise(request, CLIENT_CLOSED_REQUEST, undefined);
    done();
  });

  app.setNotFoundHandler((request, reply) => {
    const state = states.get(request.raw);
    if (state?.special === 'discovery' && state.target.ok) {
      const base = resourceUrl(config, request, '', '');
      return reply.header('cache-control', 'no-cache').send(buildDiscovery(config.routes, base, config.hash));
    }
    if (state?.invalidHost) {
      state.outcome = 'invalid';
      return sendError(reply, 'GW_ERR_HOST_INVALID');
    }
    if (state && !state.target.ok) {
      state.outcome = 'invalid';
      return sendError(reply, 'GW_ERR_PATH_INVALID', `The request path is not a valid URL path: ${state.target.reason}`);
    }
    if (state) state.outcome = 'not_found';
    return sendError(reply, 'GW_ERR_ROUTE_NOT_FOUND');
  });

  app.setErrorHandler((error, request, reply) => {
    const state = states.get(request.raw);
    if (state) state.outcome = 'error';
    if (error instanceof InfrastructureError) {
      request.log.error({ err: error }, 'infrastructure fault');
      if (state) state.reason = error.code;
      const err = new GatewayError(error.code, { cause: error });
      return reply.code(err.statusCode).header('retry-after', String(RETRY_AFTER_SECONDS)).send(errorBody(err));
    }
    if (error instanceof GatewayError) return reply.code(error.statusCode).send(errorBody(error));
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send(error);
    request.log.error({ err: error }, 'unexpected error');
    return sendError(reply, 'GW_ERR_GATEWAY_INTERNAL');
  });

  await registerUpstreams(app, {
    config,
    states,
    checkout,
    countUnchargedForward: (payer) => deps.unchargedForwards.take(payer.toLowerCase(), unchargedLimit, deps.clock.nowMs()),
    summariseLate: (request) => summarise(request, CLIENT_CLOSED_REQUEST, undefined),
  });
  await app.ready();
  if (!handle) throw new Error('fastify did not hand over its request handler');
  return { config, app, handle };
}

/**
 * The logger of each route's summary lines, made once: the route and its price are bound (pino
 * serialises bindings once, not per line), and redaction is off, because a summary line carries
 * no headers; together about a third of the line's cost.
 */
function summaryLoggers(logger: Logger): (route: RouteConfig | undefined) => Logger {
  const base = logger.child({}, { redact: [] });
  const byRoute = new Map<RouteConfig | undefined, Logger>();
  return (route) => {
    let log = byRoute.get(route);
    if (!log) {
      const price = route?.price.kind === 'priced' ? route.price.options.map((o) => `${o.amount} ${o.asset.id}`).join(' | ') : 'free';
      log = base.child({ route: route?.match, price });
      byRoute.set(route, log);
    }
    return log;
  };
}

/** The status logged for a request whose caller closed the connection first (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499;

/** fastify's trustProxy; a hop count N trusts the N nearest proxies (as proxy-addr counts them). */
function trustProxyOption(trust: Config['trustProxy']): NonNullable<FastifyServerOptions['trustProxy']> {
  if (typeof trust === 'number') return (_address: string, hop: number) => hop < trust;
  return typeof trust === 'object' ? [...trust] : trust;
}

/**
 * A reason as a metric label. Protocol reasons are short snake_case words; a facilitator can send
 * any text as its reason, and every distinct label value is a new time series.
 */
function reasonLabel(reason: string): string {
  return /^[a-z0-9_]{1,64}$/.test(reason) ? reason : 'other';
}

/** Counts one finished request in the metrics. */
function observe(metrics: GatewayMetrics, state: RequestState, status: number): void {
  const route = state.match?.route.match ?? (state.special ? 'discovery' : 'unmatched');
  metrics.requests.inc({ route, outcome: state.outcome });
  if (state.outcome === 'refused' && state.reason && !state.settlement) metrics.verificationFailures.inc({ reason: reasonLabel(state.reason) });
  if (state.settlement) {
    metrics.settlements.inc({ outcome: state.settlement.outcome, mode: state.settlement.mode });
    if (state.settlement.mode !== 'proof') metrics.settlementSeconds.observe({ mode: state.settlement.mode }, state.settlement.seconds);
  }
  if (state.charged) {
    const o = state.charged;
    metrics.revenue.inc({ route, asset: o.asset.id, network: o.asset.network.caip2 }, Number(o.amount));
  }
  // What enforcing would have earned: under `settlement: after` an upstream failure is not charged.
  if (state.wouldCharge && (status < 400 || state.match?.route.settlement === 'before')) {
    const o = state.wouldCharge;
    metrics.shadowRevenue.inc({ route, asset: o.asset.id, network: o.asset.network.caip2 }, Number(o.amount));
  }
  if (state.upstreamSeconds !== undefined) metrics.upstreamSeconds.observe({ route }, state.upstreamSeconds);
}
