/**
 * The paywall: an `onRequest` hook that decides, before any byte goes upstream, whether a request
 * to a priced route may pass. It runs before the body is read, so an unpaid POST is answered
 * without being forwarded.
 *
 * `decide` returns a `PaywallDecision` and, when the request stops here, the answer to give;
 * the hook writes the decision into the request state and acts on it in one exhaustive `switch`.
 * Free route: pass. Priced, no payment: 402 challenge. `X-Payment-Proof`: the seed's proof flow.
 * Payment header: the failed-attempt limits (429) -> decode (malformed: 400) -> match, verify,
 * reserve the nonce -> a
 * `PendingPayment`: `settlement: before` settles it now; `settlement: after` leaves it to
 * `proxy.ts`, which settles when the upstream's status line arrives and before its body is sent.
 *
 * The paywall's answer is not what stops a refused request: the proxy's `preHandler`
 * (`mayForward`) lets only a request with a settled or reserved payment through, so no later hook
 * (an async onSend) can let a challenged request reach the upstream.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Allowlist, Config, PaymentOption, RouteConfig } from '../config/types.js';
import type { ErrorCode } from '../errors.js';
import type { Checkout, PaymentRequestInfo } from '../payments/checkout.js';
import { decodePaymentHeader } from '../protocol/decode-payment.js';
import { isProofSignature, PROOF_REASON, PROOF_SIGNATURE_HEADER } from '../protocol/proof-message.js';
import { GATEWAY_REASON, REASON } from '../protocol/reasons.js';
import { isTxHash, type DecodedPayment } from '../protocol/types.js';
import { queryOverridesMethod } from './method-override.js';
import type { FailedPaymentLimit } from '../limits/failed-attempts.js';
import { PendingPayment } from './pending-payment.js';
import { PAYMENT_REQUIRED_MESSAGE, resourceUrl, sendChallenge, sendError, sendSettlementFailure, sendSettlementPending } from './replies.js';
import type { PaywallDecision, RequestStates } from './request-state.js';

export interface PaywallDeps {
  readonly config: Config;
  readonly states: RequestStates;
  readonly checkout: Checkout;
  /** Seconds until `payer` may have another paid request forwarded uncharged (0: now). */
  readonly unchargedWaitSeconds: (payer: string) => number;
  /** Counts a forwarded, released payment against its payer (see PendingPayment.release). */
  readonly countUnchargedForward: (payer: string) => void;
  /** Seconds until a client (and payer) whose payments keep failing may try again; undefined: now. */
  readonly failedAttemptWait: (client: string, payer: string | undefined) => { readonly limit: FailedPaymentLimit; readonly seconds: number } | undefined;
  /** Counts a payment attempt that failed before settlement (limits/failed-attempts.ts). */
  readonly countFailedAttempt: (client: string, provenPayer: string | undefined) => void;
}

/** How a request the paywall stops is answered. */
type PaywallAnswer =
  | { readonly kind: 'challenge'; readonly error: string }
  /** A payment presented again while its settlement is unconfirmed: no challenge, so no second signature. */
  | { readonly kind: 'pending_settlement'; readonly payment: DecodedPayment; readonly transaction: string }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly message?: string; readonly retryAfterSeconds?: number };

interface Verdict {
  readonly decision: PaywallDecision;
  readonly answer?: PaywallAnswer;
  /** A payment attempt failed before settlement: it spends from the failed-attempt limits. */
  readonly failedAttempt?: { readonly provenPayer: string | undefined };
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
      state.answer = { kind: 'invalid', reason: GATEWAY_REASON.methodOverride };
      return void sendError(reply, 'GW_ERR_METHOD_OVERRIDE');
    }
    // No state, bad path or no route: the 404 handler answers (this request reaches no upstream).
    if (!state || !state.target.ok || !state.match || state.match.route.price.kind === 'free') return;
    const route = state.match.route;
    const url = resourceUrl(config, request, state.target.path, state.target.search);
    const info: PaymentRequestInfo = { requestId: request.id, route, method: request.method, path: state.target.path, resourceUrl: url };
    const verdict = await decide(request, route, info);
    if (verdict.failedAttempt !== undefined) deps.countFailedAttempt(request.ip, verdict.failedAttempt.provenPayer);
    const decision = verdict.decision;
    state.decision = decision;
    switch (decision.kind) {
      case 'none':
      case 'allowlisted':
      case 'shadow':
      case 'proof':
        return;
      case 'challenged':
      case 'refused':
        return void answer(request, reply, route, url, verdict.answer ?? { kind: 'challenge', error: PAYMENT_REQUIRED_MESSAGE });
      case 'payment':
        if (decision.payment.decided) return; // a re-delivery: settled before, forwarded as it is
        return route.settlement === 'before' ? settleFirst(request, reply, decision.payment, url) : watchHangUp(request, reply, decision.payment);
    }
  };

  async function decide(request: FastifyRequest, route: RouteConfig, info: PaymentRequestInfo): Promise<Verdict> {
    if (route.price.kind === 'free') return { decision: { kind: 'none' } };
    const options = route.price.options;
    if (route.allow && isAllowlisted(route.allow, request)) return { decision: { kind: 'allowlisted' } };
    // Learning mode: the challenge is what clients would get; the request passes free.
    if (route.mode === 'shadow') return { decision: { kind: 'shadow', wouldCharge: options[0] } };
    const refused = (reason: string, answer: PaywallAnswer = { kind: 'challenge', error: reason }, payer?: string): Verdict => ({
      decision: payer === undefined ? { kind: 'refused', reason } : { kind: 'refused', reason, payer },
      answer,
    });
    /** A refusal of a payment attempt: it spends from the client's failed-attempt budget (and a proven payer's). */
    const failed = (verdict: Verdict, provenPayer?: string): Verdict => ({ ...verdict, failedAttempt: { provenPayer } });
    const rateLimited = (reason: string, seconds: number, payer?: string): Verdict =>
      refused(reason, { kind: 'error', code: 'GW_ERR_RATE_LIMITED', retryAfterSeconds: seconds }, payer);

    const paymentSignature = headerValue(request.headers['payment-signature']);
    const xPayment = headerValue(request.headers['x-payment']);
    const proof = headerValue(request.headers['x-payment-proof']);
    if (paymentSignature === undefined && xPayment === undefined && proof === undefined) return { decision: { kind: 'challenged' } };
    // A client whose payments keep failing waits before anything of its next one is read.
    const byClient = deps.failedAttemptWait(request.ip, undefined);
    if (byClient !== undefined) return rateLimited(GATEWAY_REASON.failedPaymentsExceeded, byClient.seconds);
    const decoded = decodePaymentHeader({ paymentSignature, xPayment });
    switch (decoded.kind) {
      case 'none': {
        if (proof === undefined) return { decision: { kind: 'challenged' } };
        const verdict = await decideProof(proof, headerValue(request.headers[PROOF_SIGNATURE_HEADER]), options, info);
        return verdict.decision.kind === 'refused' ? failed(verdict) : verdict;
      }
      case 'malformed':
        return failed(refused(decoded.reason, { kind: 'error', code: 'GW_ERR_PAYMENT_MALFORMED', message: `${decoded.message} (${decoded.reason})` }));
      case 'ok':
        break;
    }
    // A payer whose paid requests keep failing upstream (each one releases its authorization for
    // another try), or whose signed payments keep being refused, waits, before anything is
    // verified or forwarded. Keyed by the claimed payer: only verified requests spend from a
    // payer's buckets, so a forger cannot drain them.
    const payer = decoded.payment.payload.authorization.from;
    const wait = deps.unchargedWaitSeconds(payer);
    if (wait > 0) return rateLimited(GATEWAY_REASON.unchargedForwardsExceeded, wait, payer);
    const byPayer = deps.failedAttemptWait(request.ip, payer);
    if (byPayer !== undefined) return rateLimited(GATEWAY_REASON.failedPaymentsExceeded, byPayer.seconds, payer);
    const authorized = await checkout.authorize(decoded.payment, options, info);
    switch (authorized.kind) {
      case 'refused':
        if (authorized.reason === REASON.settlementPending) {
          return refused(authorized.reason, { kind: 'pending_settlement', payment: decoded.payment, transaction: authorized.transaction ?? '' }, payer);
        }
        return failed(refused(authorized.reason), authorized.provenPayer);
      case 'redelivery':
        return { decision: { kind: 'payment', payment: new PendingPayment(authorized.authorized, deps, authorized.transaction) } };
      case 'authorized':
        return { decision: { kind: 'payment', payment: new PendingPayment(authorized.authorized, deps) } };
    }
  }

  /**
   * The proof flow, only where the route turns it on: elsewhere the header is not even read (no
   * chain read, no row), the caller gets the ordinary challenge with the reason. Malformed headers
   * are 400s, as malformed payment headers are; a missing signature is a 402, whose challenge
   * shows the message to sign (see replies.ts).
   */
  async function decideProof(proof: string, signature: string | undefined, options: readonly PaymentOption[], info: PaymentRequestInfo): Promise<Verdict> {
    const refused = (reason: string, answer: PaywallAnswer = { kind: 'challenge', error: reason }): Verdict => ({ decision: { kind: 'refused', reason }, answer });
    if (!info.route.proof) return refused(PROOF_REASON.notEnabled);
    if (!isTxHash(proof)) return refused(GATEWAY_REASON.proofMalformed, { kind: 'error', code: 'GW_ERR_PROOF_MALFORMED' });
    if (signature === undefined) return refused(PROOF_REASON.signatureRequired);
    if (!isProofSignature(signature)) return refused(GATEWAY_REASON.proofSignatureMalformed, { kind: 'error', code: 'GW_ERR_PROOF_SIGNATURE_MALFORMED' });
    const outcome = await checkout.acceptProof({ txHash: proof, signature, resourceUrl: info.resourceUrl }, options, info);
    if (outcome.kind === 'refused') return refused(outcome.reason);
    return { decision: { kind: 'proof', payer: outcome.payer, transaction: proof, option: outcome.option } };
  }

  function answer(request: FastifyRequest, reply: FastifyReply, route: RouteConfig, url: string, a: PaywallAnswer, headers?: Record<string, string>): FastifyReply {
    switch (a.kind) {
      case 'challenge':
        return sendChallenge(request, reply, { route, url, error: a.error }, headers);
      case 'error':
        if (a.retryAfterSeconds !== undefined) reply.header('retry-after', String(a.retryAfterSeconds));
        return sendError(reply, a.code, a.message);
      case 'pending_settlement':
        return sendSettlementPending(reply, a.payment, a.transaction);
    }
  }

  /** `settlement: before`: the money moves first; a failed settlement is a 402 with its receipt. */
  async function settleFirst(request: FastifyRequest, reply: FastifyReply, payment: PendingPayment, url: string): Promise<void> {
    const outcome = await payment.settle();
    if (outcome.kind !== 'settled') {
      sendSettlementFailure(request, reply, payment, url, outcome.kind === 'failed' ? outcome.reason : REASON.unexpectedSettleError, states.get(request.raw));
    }
  }

  /**
   * `settlement: after`: a caller who hangs up before the request is forwarded is not charged,
   * and the reservation is freed; once forwarded, the upstream's answer decides (proxy.ts).
   */
  function watchHangUp(request: FastifyRequest, reply: FastifyReply, payment: PendingPayment): void {
    const abandon = () => payment.abandon()?.catch((err: unknown) => request.log.error({ err }, 'could not release the payment of a closed request'));
    reply.raw.once('close', abandon);
    // The caller may have gone while the payment was being verified: 'close' has fired already.
    if (reply.raw.destroyed || request.raw.socket.destroyed) abandon();
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

