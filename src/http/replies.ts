/**
 * The gateway's own answers: 402 challenges (with or without a failed-settlement receipt) and
 * fastify-shaped errors.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config, PaymentOption, RouteConfig } from '../config/types.js';
import { errorBody, GatewayError, type ErrorCode } from '../errors.js';
import { buildChallenge, PAYMENT_REQUIRED_HEADER } from '../protocol/challenge.js';
import { renderPaywallPage } from '../protocol/paywall-page.js';
import { PROOF_MESSAGE_HEADER, proofMessageTemplate } from '../protocol/proof-message.js';

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
 * Sends a 402: the v2 `PAYMENT-REQUIRED` header, the v1 JSON body (or a paywall page for a
 * browser), the informational `X-Payment-*` headers, and `Cache-Control: no-store`.
 * `extraHeaders` carries a failed settlement's receipt. On a route that accepts proofs, also the
 * message a payer signs (`X-Payment-Proof-Message`); it stays out of the v1 body and the v2
 * header, whose requirements clients echo back and must find unchanged.
 */
export function sendChallenge(
  request: FastifyRequest,
  reply: FastifyReply,
  input: { config: Config; route: RouteConfig; options: readonly PaymentOption[]; url: string; error: string },
  extraHeaders: Readonly<Record<string, string>> = {},
): FastifyReply {
  const challenge = buildChallenge({ route: input.route, resourceUrl: input.url, error: input.error, options: input.options });
  reply.code(402).header(PAYMENT_REQUIRED_HEADER, challenge.v2Header).header('cache-control', 'no-store').headers(challenge.infoHeaders).headers(extraHeaders);
  const proofMessage = input.route.proof ? proofMessageTemplate(input.url) : undefined;
  if (proofMessage !== undefined) reply.header(PROOF_MESSAGE_HEADER, proofMessage);
  if (wantsHtml(request)) {
    return reply.type('text/html; charset=utf-8').send(renderPaywallPage({ route: input.route, resourceUrl: input.url, options: input.options }));
  }
  return reply.type('application/json; charset=utf-8').send(challenge.v1Body);
}

/** Sends a catalogue error in fastify's shape. */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  const err = new GatewayError(code, message === undefined ? {} : { message });
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(errorBody(err));
}
