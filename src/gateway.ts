/**
 * The composition root: config + adapters -> a fastify app for the public listener and one for
 * the admin listener. Nothing listens here; `main.ts` (or a test) does.
 */
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { errorBody, GatewayError, InfrastructureError } from './errors.js';
import { makePaywall } from './http/paywall.js';
import { registerUpstreams } from './http/proxy.js';
import { sendError } from './http/replies.js';
import type { RequestStates } from './http/request-state.js';
import { makeRewriteUrl, UPSTREAM_CONSTRAINT, upstreamConstraint } from './http/routing.js';
import { Checkout, type CheckoutDeps } from './payments/checkout.js';

/** Seconds a client should wait before retrying after a chain or ledger fault. */
export const RETRY_AFTER_SECONDS = 5;

/** Headers browsers may read from our answers: the challenge, the receipts, the seed's info headers. */
const EXPOSED_HEADERS = [
  'PAYMENT-REQUIRED',
  'PAYMENT-RESPONSE',
  'X-PAYMENT-RESPONSE',
  'X-Payment-Address',
  'X-Payment-Amount',
  'X-Payment-Currency',
  'X-Payment-Chain',
];

export interface GatewayDeps extends CheckoutDeps {
  readonly logger: Logger;
}

/** Builds the public app: routing, CORS, paywall, proxies. */
export async function buildGateway(config: Config, deps: GatewayDeps): Promise<FastifyInstance> {
  const states: RequestStates = new WeakMap();
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    // The gateway writes its own one-line summary per request (gateway.ts onResponse).
    logController: new LogController({ disableRequestLogging: true }),
    // Ledger rows are keyed by request id: never let a client choose it.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    rewriteUrl: makeRewriteUrl(config, states),
    routerOptions: { constraints: { [UPSTREAM_CONSTRAINT]: upstreamConstraint(config, states) } },
    return503OnClosing: true,
  };
  const app = Fastify(options);
  const checkout = new Checkout(deps);

  // CORS first, so preflights are answered before the paywall and are never charged. Request
  // headers a preflight asks for are reflected (payment headers included).
  await app.register(cors, { origin: '*', exposedHeaders: EXPOSED_HEADERS, maxAge: 600 });
  app.addHook('onRequest', makePaywall({ config, states, checkout }));
  app.addHook('onResponse', async (request, reply) => {
    const state = states.get(request.raw);
    const route = state?.match?.route;
    request.log.info(
      {
        route: route?.match,
        method: request.method,
        path: state?.target.ok ? state.target.path : request.url,
        status: reply.statusCode,
        outcome: state?.outcome,
        price: route?.price.kind === 'priced' ? route.price.options.map((o) => `${o.amount} ${o.asset.id}`).join(' | ') : 'free',
        payer: state?.payer,
        tx: state?.transaction,
        reason: state?.reason,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.setNotFoundHandler((request, reply) => {
    const state = states.get(request.raw);
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

  await registerUpstreams(app, { config, states, checkout });
  return app;
}
