/**
 * Per-request gateway state, keyed by the raw Node request so that the router's constraint
 * (which sees only the raw request) and the fastify hooks share it without module globals.
 */
import type { IncomingMessage } from 'node:http';
import type { PaymentOption, RouteConfig } from '../config/types.js';
import type { AuthorizedPayment } from '../payments/checkout.js';
import type { NormalisedPath } from '../routes/normalise.js';
import type { RouteMatch } from '../routes/table.js';

/** How a request ended, for the summary log line (and metrics later). */
export type RequestOutcome =
  | 'free' // free route, or unmatched under `unmatched: free`
  | 'challenged' // priced, no payment: 402
  | 'paid' // settled and served
  | 'refused' // payment refused (malformed, invalid, replayed, settlement failed)
  | 'not_charged' // paid request whose upstream answered >= 400: nothing charged
  | 'shadow' // priced route in shadow mode: passed free, would-be charge counted
  | 'allowlisted' // priced route, caller on its allowlist: passed free
  | 'not_found' // no route, `unmatched: deny`
  | 'invalid' // unparseable path
  | 'error'; // upstream or infrastructure fault

/** A settlement's result, for metrics. */
export interface SettlementRecord {
  readonly outcome: 'settled' | 'failed' | 'pending';
  readonly mode: 'local' | 'facilitator' | 'proof';
  readonly seconds: number;
}

export interface RequestState {
  readonly target: NormalisedPath;
  readonly match: RouteMatch<RouteConfig> | undefined;
  /** The gateway's own endpoint this request is for (`/.well-known/x402`), if any. */
  readonly special: 'discovery' | undefined;
  /** The Host header is not one host (see routing.ts): the request is refused with 400. */
  readonly invalidHost: boolean;
  outcome: RequestOutcome;
  /** A verified, reserved payment still to be settled when the upstream answers (`settlement: after`). */
  toSettle: AuthorizedPayment | undefined;
  /** The receipt header to add to the upstream's answer, once settled. */
  receipt: { readonly name: string; readonly value: string } | undefined;
  /** For the summary log line. */
  payer: string | undefined;
  transaction: string | undefined;
  reason: string | undefined;
  /** What was charged (for revenue), or what shadow mode would have charged. */
  charged: PaymentOption | undefined;
  wouldCharge: PaymentOption | undefined;
  settlement: SettlementRecord | undefined;
  /** performance.now() when the request was handed to the proxy; upstream latency starts here. */
  forwardedAt: number | undefined;
  /** Seconds from forwarding to the upstream's response headers. */
  upstreamSeconds: number | undefined;
  /** Set once the request's summary line and metrics are written (see gateway.ts). */
  summarised: boolean;
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
  special?: 'discovery',
  invalidHost = false,
): RequestState {
  return {
    target,
    match,
    special,
    invalidHost,
    outcome: 'free',
    toSettle: undefined,
    receipt: undefined,
    payer: undefined,
    transaction: undefined,
    reason: undefined,
    charged: undefined,
    wouldCharge: undefined,
    settlement: undefined,
    forwardedAt: undefined,
    upstreamSeconds: undefined,
    summarised: false,
  };
}
