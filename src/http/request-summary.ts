/**
 * Exactly one summary line and one set of metric counts per request, however it ended: with an
 * answer (onResponse), with the caller gone (onRequestAbort), or with the caller gone while its
 * forwarded payment was still to be decided (proxy.ts, once it is).
 *
 * Nothing here is recorded along the way: the summary is derived from the paywall's decision, the
 * payment's outcome and the gateway's own answer, so it cannot disagree with what happened.
 */
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { PaymentOption, RouteConfig } from '../config/types.js';
import type { GatewayMetrics } from '../metrics.js';
import type { RequestState, RequestStates } from './request-state.js';
import { GATEWAY_REASON } from '../protocol/reasons.js';

/** The status logged for a request whose caller closed the connection first (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499;

/** How a request ended, for the summary line and the `outcome` label. */
export type RequestOutcome =
  | 'free' // free route, or unmatched under `unmatched: free`
  | 'challenged' // priced, no payment: 402
  | 'paid' // settled (or proven) and served
  | 'deferred' // served, its payment owed and queued for a batch (settlement: deferred)
  | 'refused' // payment refused (malformed, invalid, replayed, rate limited, settlement failed)
  | 'not_charged' // a reserved payment released: the upstream answered >= 400, or the caller left before forwarding
  | 'redelivered' // a payment presented again by a caller that never got its answer: served again, not charged again
  | 'shadow' // priced route in shadow mode: passed free, would-be charge counted
  | 'allowlisted' // priced route, caller on its allowlist: passed free
  | 'not_found' // no route, `unmatched: deny`
  | 'invalid' // unparseable path or Host, a method override
  | 'error'; // upstream or infrastructure fault

/** What a request's summary says, derived from its state. */
export interface RequestSummary {
  readonly outcome: RequestOutcome;
  readonly reason: string | undefined;
  readonly payer: string | undefined;
  readonly transaction: string | undefined;
  /** What was charged (for revenue). */
  readonly charged: PaymentOption | undefined;
  /** What shadow mode would have charged. */
  readonly wouldCharge: PaymentOption | undefined;
  readonly settlement: { readonly outcome: 'settled' | 'failed' | 'pending'; readonly mode: string; readonly seconds: number | undefined } | undefined;
}

/** Derives the summary of a request from its decision, its payment's outcome and the gateway's answer. */
export function summaryOf(state: RequestState): RequestSummary {
  const answer = state.answer;
  const decision = state.decision;
  switch (decision.kind) {
    case 'none':
      return summary(answer?.kind ?? 'free', { reason: answer?.kind === 'not_found' ? undefined : answer?.reason });
    case 'allowlisted':
    case 'challenged':
      return answer?.kind === 'error' ? summary('error', { reason: answer.reason }) : summary(decision.kind);
    case 'shadow':
      return summary('shadow', { wouldCharge: decision.wouldCharge });
    case 'refused':
      return summary('refused', { reason: decision.reason, payer: decision.payer });
    case 'proof':
      return summary(answer?.kind ?? 'paid', {
        reason: answer?.kind === 'not_found' ? undefined : answer?.reason,
        payer: decision.payer,
        transaction: decision.transaction,
        charged: decision.option,
        settlement: { outcome: 'settled', mode: 'proof', seconds: undefined },
      });
    case 'payment': {
      const payment = decision.payment;
      const outcome = payment.outcome;
      const payer = payment.authorized.payer;
      const settlement = payment.settlement;
      const answered = answer === undefined || answer.kind === 'not_found' ? undefined : answer;
      if (outcome === undefined) return summary(answered?.kind ?? 'not_charged', { reason: answered?.reason, payer, settlement });
      switch (outcome.kind) {
        case 'settled':
          if (payment.redelivery) return summary(answered?.kind ?? 'redelivered', { reason: answered?.reason, payer: outcome.payer, transaction: outcome.transaction });
          return summary(answered?.kind ?? 'paid', {
            reason: answered?.reason ?? (outcome.note || undefined),
            payer: outcome.payer,
            transaction: outcome.transaction,
            // A reconciler that recorded the row first counted the revenue and the settlement.
            charged: outcome.reconciledFirst ? undefined : payment.authorized.option,
            settlement: outcome.reconciledFirst ? undefined : settlement,
          });
        case 'failed':
          // A settlement the gateway failed for a fault of its own (a refused facilitator key) is an error, not a refusal.
          return summary(answered?.kind === 'error' ? 'error' : 'refused', { reason: outcome.reason, payer, transaction: outcome.transaction, settlement });
        case 'released':
          return summary(answered?.kind ?? 'not_charged', { reason: answered?.reason ?? outcome.reason, payer });
        case 'queued':
          // Revenue and the settlement are counted when its batch settles it (server.ts).
          return summary(answered?.kind ?? 'deferred', { reason: answered?.reason, payer: outcome.payer });
      }
    }
  }
}

/**
 * Every summary in one shape, every field written in the same order. Spreading a shared base and
 * overwriting some of its fields (`{ ...base, reason }`) gave each branch an object V8 could not
 * keep fast, and reading them cost ~10 µs per request on a free route.
 */
function summary(outcome: RequestOutcome, fields: Partial<Omit<RequestSummary, 'outcome'>> = NO_FIELDS): RequestSummary {
  return {
    outcome,
    reason: fields.reason,
    payer: fields.payer,
    transaction: fields.transaction,
    charged: fields.charged,
    wouldCharge: fields.wouldCharge,
    settlement: fields.settlement,
  };
}

const NO_FIELDS: Partial<Omit<RequestSummary, 'outcome'>> = Object.freeze({});

/** Writes a request's summary line and counts it, once. */
export type Summarise = (request: FastifyRequest, status: number, ms: number | undefined) => void;

export function makeSummarise(states: RequestStates, logger: Logger, metrics: GatewayMetrics): Summarise {
  const accessLog = summaryLoggers(logger);
  return (request, status, ms) => {
    const state = states.get(request.raw);
    if (state?.summarised) return;
    const summary = state ? summaryOf(state) : undefined;
    if (state && summary) {
      state.summarised = true;
      observe(metrics, state, summary, status);
    }
    accessLog(state?.match?.route).info(
      {
        reqId: request.id,
        method: request.method,
        path: state?.target.ok ? state.target.path : request.url,
        status,
        outcome: summary?.outcome,
        payer: summary?.payer,
        tx: summary?.transaction,
        reason: summary?.reason,
        ms: ms === undefined ? undefined : Math.round(ms),
      },
      'request',
    );
  };
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

/**
 * A reason as a metric label. Protocol reasons are short snake_case words; a facilitator can send
 * any text as its reason, and every distinct label value is a new time series.
 */
function reasonLabel(reason: string): string {
  return /^[a-z0-9_]{1,64}$/.test(reason) ? reason : GATEWAY_REASON.unlistedReasonLabel;
}

/** Counts one finished request in the metrics. */
function observe(metrics: GatewayMetrics, state: RequestState, summary: RequestSummary, status: number): void {
  const route = state.match?.route.match ?? state.ownEndpoint ?? 'unmatched';
  metrics.requests.inc({ route, outcome: summary.outcome });
  if (state.decision.kind === 'refused') metrics.verificationFailures.inc({ reason: reasonLabel(state.decision.reason) });
  // A dependency's fault is answered with its error code as the reason (replies.ts).
  const fault = state.answer?.kind === 'error' ? state.answer.reason : undefined;
  if (fault?.startsWith('GW_ERR_')) metrics.infrastructureErrors.inc({ code: fault });
  const settlement = summary.settlement;
  if (settlement) {
    metrics.settlements.inc({ outcome: settlement.outcome, mode: settlement.mode });
    if (settlement.seconds !== undefined) metrics.settlementSeconds.observe({ mode: settlement.mode }, settlement.seconds);
  }
  if (summary.charged) {
    const o = summary.charged;
    metrics.revenue.inc({ route, asset: o.asset.id, network: o.asset.network.caip2 }, Number(o.amount));
  }
  // What enforcing would have earned: under `settlement: after` an upstream failure is not charged.
  if (summary.wouldCharge && (status < 400 || state.match?.route.settlement === 'before')) {
    const o = summary.wouldCharge;
    metrics.shadowRevenue.inc({ route, asset: o.asset.id, network: o.asset.network.caip2 }, Number(o.amount));
  }
  if (state.upstreamSeconds !== undefined) metrics.upstreamSeconds.observe({ route }, state.upstreamSeconds);
}
