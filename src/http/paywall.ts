/**
 * The paywall: an `onRequest` hook that decides, before any byte goes upstream, whether a request
 * to a priced route may pass. It runs before the body is read, so an unpaid POST is answered
 * without being forwarded.
 *
 * Free route: pass. Priced, no payment: 402 challenge. `X-Payment-Proof`: the seed's proof flow.
 * Payment header: decode (malformed: 400) -> match, verify, reserve the nonce -> `settlement:
 * before` settles now; `settlement: after` leaves the settlement to `proxy.ts`, which settles
 * when the upstream's status line arrives and before its body is sent on.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Allowlist, Config, PaymentOption } from '../config/types.js';
import type { Checkout, PaymentRequestInfo } from '../payments/checkout.js';
import { decodePaymentHeader } from '../protocol/decode-payment.js';
import { isProofSignature, PROOF_REASON, PROOF_SIGNATURE_HEADER } from '../protocol/proof-message.js';
import { isTxHash } from '../protocol/types.js';
import { queryOverridesMethod } from './method-override.js';
import { PAYMENT_REQUIRED_MESSAGE, resourceUrl, sendChallenge, sendError } from './replies.js';
import type { RequestState, RequestStates } from './request-state.js';
import { applySettlement, failureReceipt, settleTimed } from './settlement.js';


export interface PaywallDeps {
  readonly config: Config;
  readonly states: RequestStates;
  readonly checkout: Checkout;
  /** Seconds until `payer` may have another paid request forwarded uncharged (0: now). */
  readonly unchargedWaitSeconds: (payer: string) => number;
}

/** A header's single value; a repeated header is refused by the decoders it reaches. */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

export function makePaywall(deps: PaywallDeps) {
  const { config, states, checkout } = deps;

  return async function paywall(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const state = states.get(request.raw);
    if (state?.target.ok && queryOverridesMethod(state.target.search)) {
      state.outcome = 'invalid';
      return sendError(reply, 'GW_ERR_METHOD_OVERRIDE');
    }
    // No state, bad path or no route: the 404 handler answers (this request reaches no upstream).
    if (!state || !state.target.ok || !state.match) return;
    const route = state.match.route;
    if (route.price.kind === 'free') return;
    const options = route.price.options;
    if (route.allow && isAllowlisted(route.allow, request)) {
      state.outcome = 'allowlisted';
      return;
    }
    if (route.mode === 'shadow') {
      // Learning mode: the challenge is what clients would get; the request passes free.
      state.outcome = 'shadow';
      state.wouldCharge = options[0];
      return;
    }
    const url = resourceUrl(config, request, state.target.path, state.target.search);
    const info: PaymentRequestInfo = { requestId: request.id, route, method: request.method, path: state.target.path, resourceUrl: url };
    const challenge = (error: string, extraHeaders?: Record<string, string>) => {
      state.outcome = error === PAYMENT_REQUIRED_MESSAGE ? 'challenged' : 'refused';
      if (error !== PAYMENT_REQUIRED_MESSAGE) state.reason = error;
      return sendChallenge(request, reply, { config, route, options, url, error }, extraHeaders);
    };

    const decoded = decodePaymentHeader({
      paymentSignature: headerValue(request.headers['payment-signature']),
      xPayment: headerValue(request.headers['x-payment']),
    });
    switch (decoded.kind) {
      case 'none': {
        const proof = headerValue(request.headers['x-payment-proof']);
        if (proof === undefined) return challenge(PAYMENT_REQUIRED_MESSAGE);
        return acceptProof(proof, headerValue(request.headers[PROOF_SIGNATURE_HEADER]), options, state, info, reply, challenge);
      }
      case 'malformed':
        await checkout.refuse(info, undefined, undefined, decoded.reason);
        state.outcome = 'refused';
        state.reason = decoded.reason;
        return sendError(reply, 'GW_ERR_PAYMENT_MALFORMED', `${decoded.message} (${decoded.reason})`);
      case 'ok':
        break;
    }

    // A payer whose paid requests keep failing upstream (each one releases its authorization for
    // another try) waits, before anything is verified or forwarded. Keyed by the claimed payer:
    // only verified, forwarded requests spend from a payer's bucket, so a forger cannot drain it.
    const wait = deps.unchargedWaitSeconds(decoded.payment.payload.authorization.from);
    if (wait > 0) {
      state.outcome = 'refused';
      state.reason = 'uncharged_forwards_exceeded';
      return sendError(reply.header('retry-after', String(wait)), 'GW_ERR_RATE_LIMITED');
    }
    const authorized = await checkout.authorize(decoded.payment, options, info);
    if (authorized.kind === 'refused') return challenge(authorized.reason);
    state.payer = authorized.authorized.payer;
    if (route.settlement === 'after') {
      state.toSettle = authorized.authorized;
      // A caller who hangs up before the request is forwarded is not charged, and the reservation
      // is freed. Once forwarded, the upstream's answer decides (proxy.ts), caller or not.
      const releaseIfClosed = () => {
        const pending = state.toSettle;
        if (!pending || state.forwardedAt !== undefined) return;
        state.toSettle = undefined;
        state.outcome = 'not_charged';
        state.reason = 'client_closed';
        checkout.release(pending, 'client_closed').catch((err: unknown) => request.log.error({ err }, 'could not release the payment of a closed request'));
      };
      reply.raw.once('close', releaseIfClosed);
      // The caller may have gone while the payment was being verified: 'close' has fired already.
      if (reply.raw.destroyed || request.raw.socket.destroyed) releaseIfClosed();
      return;
    }
    const settled = await settleTimed(checkout, state, authorized.authorized);
    if (!applySettlement(state, authorized.authorized, settled)) {
      return challenge(settled.kind === 'failed' ? settled.reason : 'unexpected_settle_error', failureReceipt(authorized.authorized, settled));
    }
  };

  /**
   * The proof flow, only where the route turns it on: elsewhere the header is not even read (no
   * chain read, no row), the caller gets the ordinary challenge with the reason. Malformed headers
   * are 400s, as malformed payment headers are; a missing signature is a 402, whose challenge
   * shows the message to sign (see replies.ts).
   */
  async function acceptProof(
    proof: string,
    signature: string | undefined,
    options: readonly PaymentOption[],
    state: RequestState,
    info: PaymentRequestInfo,
    reply: FastifyReply,
    challenge: (error: string) => FastifyReply,
  ): Promise<FastifyReply | undefined> {
    if (!info.route.proof) return challenge(PROOF_REASON.notEnabled);
    if (!isTxHash(proof)) {
      state.outcome = 'refused';
      return sendError(reply, 'GW_ERR_PROOF_MALFORMED');
    }
    if (signature === undefined) return challenge(PROOF_REASON.signatureRequired);
    if (!isProofSignature(signature)) {
      state.outcome = 'refused';
      return sendError(reply, 'GW_ERR_PROOF_SIGNATURE_MALFORMED');
    }
    const outcome = await checkout.acceptProof({ txHash: proof, signature, resourceUrl: info.resourceUrl }, options, info);
    if (outcome.kind === 'refused') return challenge(outcome.reason);
    state.outcome = 'paid';
    state.payer = outcome.payer;
    state.transaction = proof;
    state.charged = outcome.option;
    state.settlement = { outcome: 'settled', mode: 'proof', seconds: 0 };
    return undefined;
  }
}

/** A caller with an allowlisted API key, or from an allowlisted address. */
function isAllowlisted(allow: Allowlist, request: FastifyRequest): boolean {
  const key = request.headers[allow.apiKeyHeader];
  if (typeof key === 'string' && allow.apiKeySha256.size > 0 && allow.apiKeySha256.has(createHash('sha256').update(key).digest('hex'))) {
    return true;
  }
  const ip = request.ip.startsWith('::ffff:') && isIPv4(request.ip.slice(7)) ? request.ip.slice(7) : request.ip;
  const family = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
  return family !== undefined && allow.cidrs.check(ip, family);
}
