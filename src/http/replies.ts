/**
 * The gateway's own answers: 402 challenges (with or without a failed-settlement receipt) and
 * fastify-shaped errors.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Config, RouteConfig } from '../config/types.js';
import { errorBody, GatewayError, InfrastructureError, type ErrorCode } from '../errors.js';
import { buildChallenge, PAYMENT_REQUIRED_HEADER } from '../protocol/challenge.js';
import { buildDiscovery } from '../protocol/discovery.js';
import { renderChallengePage } from '../protocol/challenge-page.js';
import { PROOF_MESSAGE_HEADER, proofMessageTemplate } from '../protocol/proof-message.js';
import { encodeReceiptHeader, receiptHeaderName } from '../protocol/receipt.js';
import { GATEWAY_REASON, REASON } from '../protocol/reasons.js';
import type { DecodedPayment } from '../protocol/types.js';
import type { PendingPayment } from './pending-payment.js';
import type { RequestState, RequestStates } from './request-state.js';
import { sendSettlementStatus } from './settlement-status.js';
import type { SettlementQueue } from '../payments/ports.js';

/** Seconds a client should wait before retrying after a chain or ledger fault. */
export const RETRY_AFTER_SECONDS = 5;

/** `error` of a challenge to a request that carried no payment (the v2 servers' wording). */
export const PAYMENT_REQUIRED_MESSAGE = 'Payment required';

/** The absolute URL of the requested resource, query included, as challenges name it. */
export function resourceUrl(config: Config, request: FastifyRequest, path: string, search: string): string {
  const base = config.publicUrl ?? `${request.protocol}://${request.host}`;
  return base + path + search;
}

/**
 * A browser asking for a page gets HTML; programs get the JSON v1 body. Both conditions, as the
 * official servers test them: an agent sending a browser-like Accept still gets the JSON that
 * v1 clients parse.
 */
function wantsHtml(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/html') && (request.headers['user-agent'] ?? '').includes('Mozilla');
}

/**
 * Sends a 402: the v2 `PAYMENT-REQUIRED` header, the v1 JSON body (or the challenge page for a
 * browser), the informational `X-Payment-*` headers, and `Cache-Control: no-store`.
 * `extraHeaders` carries a failed settlement's receipt. On a route that accepts proofs, also the
 * message a payer signs (`X-Payment-Proof-Message`); it stays out of the v1 body and the v2
 * header, whose requirements clients echo back and must find unchanged.
 */
export function sendChallenge(
  request: FastifyRequest,
  reply: FastifyReply,
  input: { route: RouteConfig; url: string; error: string },
  extraHeaders: Readonly<Record<string, string>> = {},
): FastifyReply {
  const options = input.route.price.kind === 'priced' ? input.route.price.options : [];
  const challenge = buildChallenge({ route: input.route, resourceUrl: input.url, error: input.error, options });
  reply.code(402).header(PAYMENT_REQUIRED_HEADER, challenge.v2Header).header('cache-control', 'no-store').headers(challenge.infoHeaders).headers(extraHeaders);
  const proofMessage = input.route.proof ? proofMessageTemplate(input.url) : undefined;
  if (proofMessage !== undefined) reply.header(PROOF_MESSAGE_HEADER, proofMessage);
  if (wantsHtml(request)) {
    return reply.type('text/html; charset=utf-8').send(renderChallengePage({ route: input.route, resourceUrl: input.url, options }));
  }
  return reply.type('application/json; charset=utf-8').send(challenge.v1Body);
}

/**
 * A settlement that failed, before forwarding (`settlement: before`, the paywall) or after the
 * upstream answered (`after`, the proxy): never the upstream's body; a 402 with the reason and
 * the failure's receipt header (and no new challenge while the settlement may still land).
 */
export function sendSettlementFailure(
  request: FastifyRequest,
  reply: FastifyReply,
  payment: PendingPayment,
  url: string,
  reason: string,
  state: RequestState | undefined,
): FastifyReply {
  // The facilitator refused our key: the payer did nothing wrong and nothing was charged, so no
  // challenge asking for another signature; a fault of the gateway's, counted as one.
  if (reason === GATEWAY_REASON.facilitatorAuthRefused) {
    const code = 'GW_ERR_FACILITATOR_AUTH';
    if (state) state.answer = { kind: 'error', reason: code };
    request.log.error({ reason }, 'a facilitator refused the gateway\'s credentials; settlement failed, nothing charged');
    reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    return sendError(reply, code);
  }
  // Still pending: the same payment will be served once it lands (re-delivery); a new challenge
  // would invite a second signature, and a second charge.
  if (reason === REASON.settlementPending) return sendSettlementPending(reply, payment.authorized.payment, payment.outcome?.kind === 'failed' ? (payment.outcome.transaction ?? '') : '');
  const receipt = payment.receiptHeader();
  return sendChallenge(request, reply, { route: payment.authorized.request.route, url, error: reason }, receipt ? { [receipt.name]: receipt.value } : {});
}

/**
 * A settlement still unconfirmed, first answered or presented again (redelivery.ts): 402
 * `settlement_pending` with `Retry-After` and the receipt header naming the transaction, and no
 * requirements, so a client's retry loop presents the same payment again rather than signing a
 * second one.
 */
export function sendSettlementPending(reply: FastifyReply, payment: DecodedPayment, transaction: string): FastifyReply {
  const a = payment.payload.authorization;
  const receipt = encodeReceiptHeader({ success: false, errorReason: REASON.settlementPending, payer: a.from, transaction, network: payment.network });
  return reply
    .code(402)
    .header('retry-after', String(RETRY_AFTER_SECONDS))
    .header('cache-control', 'no-store')
    .header(receiptHeaderName(payment.x402Version), receipt)
    .type('application/json; charset=utf-8')
    .send({ x402Version: payment.x402Version, error: REASON.settlementPending, transaction, accepts: [] });
}

/** Sends a catalogue error in fastify's shape. */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  const err = new GatewayError(code, message === undefined ? {} : { message });
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(errorBody(err));
}

/**
 * Requests that reach no upstream: the gateway's own discovery document, an invalid Host or path,
 * or no route under `unmatched: deny`.
 */
export function makeNotFoundHandler(config: Config, states: RequestStates, queue: Pick<SettlementQueue, 'deferredStatus'>) {
  return (request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> => {
    const state = states.get(request.raw);
    if (state?.ownEndpoint === 'discovery' && state.target.ok) {
      const base = resourceUrl(config, request, '', '');
      return reply.header('cache-control', 'no-cache').send(buildDiscovery(config.routes, base, config.hash));
    }
    if (state?.ownEndpoint === 'settlement_status' && state.target.ok) {
      return sendSettlementStatus(reply, queue, state.target.segments[3] ?? '');
    }
    if (state?.invalidHost) {
      state.answer = { kind: 'invalid' };
      return sendError(reply, 'GW_ERR_HOST_INVALID');
    }
    if (state && !state.target.ok) {
      state.answer = { kind: 'invalid' };
      return sendError(reply, 'GW_ERR_PATH_INVALID', `The request path is not a valid URL path: ${state.target.reason}`);
    }
    if (state) state.answer = { kind: 'not_found' };
    return sendError(reply, 'GW_ERR_ROUTE_NOT_FOUND');
  };
}

/** Faults: an infrastructure fault is a 503/502 with Retry-After (never free access); a bug a 500. */
export function makeErrorHandler(states: RequestStates) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const state = states.get(request.raw);
    if (error instanceof InfrastructureError) {
      request.log.error({ err: error }, 'infrastructure fault');
      if (state) state.answer = { kind: 'error', reason: error.code };
      const err = new GatewayError(error.code, { cause: error });
      return reply.code(err.statusCode).header('retry-after', String(RETRY_AFTER_SECONDS)).send(errorBody(err));
    }
    if (state) state.answer = { kind: 'error' };
    if (error instanceof GatewayError) return reply.code(error.statusCode).send(errorBody(error));
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send(error);
    request.log.error({ err: error }, 'unexpected error');
    return sendError(reply, 'GW_ERR_GATEWAY_INTERNAL');
  };
}
