/**
 * Per-request gateway state, keyed by the raw Node request so that the router's constraint
 * (which sees only the raw request) and the fastify hooks share it without module globals.
 */
import type { IncomingMessage } from 'node:http';
import type { PaymentOption, RouteConfig } from '../config/types.js';
import type { NormalisedPath } from '../routes/normalise.js';
import type { RouteMatch } from '../routes/table.js';
import type { PendingPayment } from './pending-payment.js';

/**
 * What the paywall decided for a request, written once by its one `switch` (paywall.ts). Every
 * summary field (outcome, payer, transaction, what was charged) is derived from this, the
 * payment's own outcome and the gateway's answer (request-summary.ts); nothing else is recorded.
 */
export type PaywallDecision =
  | { readonly kind: 'none' } // not a priced route (free, unmatched, the gateway's own), or not yet decided
  | { readonly kind: 'allowlisted' }
  | { readonly kind: 'shadow'; readonly wouldCharge: PaymentOption | undefined }
  | { readonly kind: 'challenged' }
  | { readonly kind: 'refused'; readonly reason: string; readonly payer?: string }
  | { readonly kind: 'payment'; readonly payment: PendingPayment }
  | { readonly kind: 'proof'; readonly payer: string; readonly transaction: string; readonly option: PaymentOption };

/** The gateway answered in the upstream's place for a reason of its own, not the paywall's. */
export type GatewayAnswer =
  | { readonly kind: 'not_found' }
  | { readonly kind: 'invalid'; readonly reason?: string }
  | { readonly kind: 'error'; readonly reason?: string };

export type OwnEndpoint = 'discovery' | 'settlement_status';

export interface RequestState {
  readonly target: NormalisedPath;
  readonly match: RouteMatch<RouteConfig> | undefined;
  /** The gateway's own endpoint this request is for (`/.well-known/x402`, a deferred settlement's status), if any. */
  readonly ownEndpoint: OwnEndpoint | undefined;
  /** The Host header is not one host (see routing.ts): the request is refused with 400. */
  readonly invalidHost: boolean;
  decision: PaywallDecision;
  answer: GatewayAnswer | undefined;
  /** performance.now() when the request was handed to the proxy; upstream latency starts here. */
  forwardedAt: number | undefined;
  /** Seconds from forwarding to the upstream's response headers. */
  upstreamSeconds: number | undefined;
  /** Set once the request's summary line and metrics are written (request-summary.ts). */
  summarised: boolean;
}

/** The payment of a request, when the paywall authorized one. */
export function paymentOf(state: RequestState | undefined): PendingPayment | undefined {
  return state?.decision.kind === 'payment' ? state.decision.payment : undefined;
}

/**
 * The state of each request, one store per gateway instance. Kept on the request object itself
 * under a symbol of this store (so it vanishes with the request), rather than in a WeakMap: a
 * WeakMap entry per request was a visible cost on a free route (ephemeron bookkeeping in the GC).
 */
export class RequestStates {
  readonly #key = Symbol('x402-gateway request state');

  get(req: IncomingMessage): RequestState | undefined {
    return (req as IncomingMessage & Record<symbol, RequestState | undefined>)[this.#key];
  }

  set(req: IncomingMessage, state: RequestState): void {
    (req as IncomingMessage & Record<symbol, RequestState | undefined>)[this.#key] = state;
  }
}

export function newRequestState(
  target: NormalisedPath,
  match: RouteMatch<RouteConfig> | undefined,
  ownEndpoint?: OwnEndpoint,
  invalidHost = false,
): RequestState {
  return {
    target,
    match,
    ownEndpoint,
    invalidHost,
    decision: NO_DECISION,
    answer: undefined,
    forwardedAt: undefined,
    upstreamSeconds: undefined,
    summarised: false,
  };
}

const NO_DECISION: PaywallDecision = Object.freeze({ kind: 'none' });
