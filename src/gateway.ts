/**
 * One config's app: the fastify instance with routing, CORS, the paywall, the proxies and the
 * summary hooks, wired to the payment backends it is given (server.ts makes them with
 * payment-backends.ts). Wiring only: the behaviour lives in http/. Nothing listens here: `handle`
 * is the app's request handler, which http/listener.ts points the one public socket at, so a
 * reload swaps apps atomically while requests in flight finish on the app they started with.
 */
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { makeDeclaredBodyLimit } from './http/body-limit.js';
import { makePaywall } from './http/paywall.js';
import { registerUpstreams } from './http/proxy.js';
import { makeErrorHandler, makeNotFoundHandler } from './http/replies.js';
import { paymentOf, RequestStates } from './http/request-state.js';
import { CLIENT_CLOSED_REQUEST, makeSummarise } from './http/request-summary.js';
import { makeRewriteUrl, UPSTREAM_CONSTRAINT, upstreamConstraint } from './http/routing.js';
import type { FailedPaymentAttempts } from './limits/failed-attempts.js';
import type { TokenBuckets } from './limits/token-buckets.js';
import type { GatewayMetrics } from './metrics.js';
import { Checkout, type CheckoutDeps } from './payments/checkout.js';

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
  /** Per client and per payer, payment attempts that failed before settlement; kept across reloads. */
  readonly failedPayments: FailedPaymentAttempts;
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
    // The app never listens: http/listener.ts owns the socket and calls `handle`.
    serverFactory: (handler) => {
      handle = handler;
      return createServer();
    },
  };
  const app = Fastify(options);
  const checkout = new Checkout({ ...deps, redeliveries: config.limits.redeliveries });

  // CORS first, so preflights are answered before the paywall and are never charged. Request
  // headers a preflight asks for are reflected (payment headers included).
  await app.register(cors, { origin: '*', exposedHeaders: EXPOSED_HEADERS, maxAge: 600 });
  // A declared body over the route's limit is refused before the paywall: nothing verified or charged.
  app.addHook('onRequest', makeDeclaredBodyLimit(config, states));
  const unchargedLimit = config.limits.unchargedForwards;
  app.addHook(
    'onRequest',
    makePaywall({
      config,
      states,
      checkout,
      countUnchargedForward: (payer) => deps.unchargedForwards.take(payer.toLowerCase(), unchargedLimit, deps.clock.nowMs()),
      unchargedWaitSeconds: (payer) => deps.unchargedForwards.waitSeconds(payer.toLowerCase(), unchargedLimit, deps.clock.nowMs()),
      failedAttemptWait: (client, payer) => deps.failedPayments.wait(config.limits.failedPayments, client, payer, deps.clock.nowMs()),
      countFailedAttempt: (client, provenPayer) => deps.failedPayments.count(config.limits.failedPayments, client, provenPayer, deps.clock.nowMs()),
    }),
  );
  const summarise = makeSummarise(states, deps.logger, deps.metrics);
  // Callback style, not async: one promise fewer on every request.
  app.addHook('onResponse', (request, reply, done) => {
    summarise(request, reply.statusCode, reply.elapsedTime);
    // Whether the paid answer reached the caller whole decides whether it may be re-delivered.
    const delivered = reply.statusCode < 500 && reply.raw.writableFinished;
    paymentOf(states.get(request.raw))?.ended(delivered)?.catch((err: unknown) => request.log.error({ err }, 'could not record the end of a paid answer'));
    done();
  });
  // A caller that hangs up before its answer gets no onResponse; it is summarised here, unless its
  // payment was forwarded and is still to be decided by the upstream: the proxy summarises that.
  app.addHook('onRequestAbort', (request, done) => {
    const payment = paymentOf(states.get(request.raw));
    if (!(payment?.forwarded && payment.outcome === undefined)) summarise(request, CLIENT_CLOSED_REQUEST, undefined);
    payment?.ended(false)?.catch((err: unknown) => request.log.error({ err }, 'could not record the end of a paid answer'));
    done();
  });
  app.setNotFoundHandler(makeNotFoundHandler(config, states, deps.ledger));
  app.setErrorHandler(makeErrorHandler(states));

  await registerUpstreams(app, {
    config,
    states,
    checkout,
    summariseLate: (request) => {
      summarise(request, CLIENT_CLOSED_REQUEST, undefined);
      paymentOf(states.get(request.raw))?.ended(false)?.catch((err: unknown) => request.log.error({ err }, 'could not record the end of a paid answer'));
    },
  });
  await app.ready();
  if (!handle) throw new Error('fastify did not hand over its request handler');
  return { config, app, handle };
}

/** fastify's trustProxy; a hop count N trusts the N nearest proxies (as proxy-addr counts them). */
function trustProxyOption(trust: Config['trustProxy']): NonNullable<FastifyServerOptions['trustProxy']> {
  if (typeof trust === 'number') return (_address: string, hop: number) => hop < trust;
  return typeof trust === 'object' ? [...trust] : trust;
}
