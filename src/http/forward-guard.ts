/**
 * The last checks before a request leaves for its upstream, run as the proxy routes' preHandler:
 * the payment check (`mayForward`), which does not rely on the paywall's reply having stopped the
 * request, and a method override in a form body, which only now can be read.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { Config } from '../config/types.js';
import { GATEWAY_REASON } from '../protocol/reasons.js';
import { formOverridesMethod, MAX_INSPECTED_FORM_BYTES, overrideCouldReachPricedRoute, readBounded } from './method-override.js';
import { sendError } from './replies.js';
import { paymentOf, type RequestState, type RequestStates } from './request-state.js';

/**
 * Whether the request may leave for the upstream. A priced, enforced route passes only with a
 * payment settled (`before`, a proof) or reserved (`after`), or as allowlisted; anything else
 * means the paywall's answer has not stopped the request, and it is refused here instead. A
 * reserved payment whose caller left before forwarding is released: no work, no charge.
 */
export function mayForward(state: RequestState | undefined, request: FastifyRequest, reply: FastifyReply): boolean {
  const route = state?.match?.route;
  if (!state || !route || route.price.kind === 'free' || route.mode === 'shadow') return true;
  const decision = state.decision;
  const callerGone = reply.raw.destroyed || request.raw.aborted;
  switch (decision.kind) {
    case 'allowlisted':
    case 'proof':
      return true;
    case 'payment': {
      const payment = decision.payment;
      if (payment.outcome?.kind === 'settled' || payment.outcome?.kind === 'queued') return true;
      if (!payment.decided && !callerGone) return true;
      payment.abandon()?.catch((err: unknown) => request.log.error({ err }, 'could not release the payment of a closed request'));
      break;
    }
    case 'none':
    case 'shadow':
    case 'challenged':
    case 'refused':
      break;
  }
  if (!callerGone && !reply.sent) {
    request.log.error({ decision: decision.kind }, 'a priced request reached the proxy without a payment');
    sendError(reply, 'GW_ERR_GATEWAY_INTERNAL');
  }
  return false;
}

/**
 * A method override in a form body (method-override.ts), which only now, after the paywall, can be
 * read; true when the request was refused. A refused request's reservation is released; a
 * `before` payment already settled keeps its receipt, as after an upstream failure.
 */
export async function refuseFormOverride(
  deps: { readonly config: Config; readonly states: RequestStates }, request: FastifyRequest, reply: FastifyReply, kind: 'urlencoded' | 'multipart'): Promise<boolean> {
  const state = deps.states.get(request.raw);
  if (!state?.target.ok) return false;
  if (!overrideCouldReachPricedRoute(deps.config.table, request.method, request.raw.headers.host, state.target.segments)) return false;
  const read = await readBounded(request.body as Readable, MAX_INSPECTED_FORM_BYTES);
  if (read.ok && !formOverridesMethod(kind, read.body)) {
    request.body = read.body;
    return false;
  }
  const reason = read.ok ? GATEWAY_REASON.methodOverride : GATEWAY_REASON.formTooLarge;
  state.answer = { kind: 'invalid', reason };
  const payment = paymentOf(state);
  if (payment && !payment.decided) await payment.release(reason);
  const receipt = payment?.receiptHeader();
  if (receipt) reply.header(receipt.name, receipt.value);
  sendError(reply, read.ok ? 'GW_ERR_METHOD_OVERRIDE' : 'GW_ERR_BODY_TOO_LARGE');
  return true;
}
