/**
 * Payment attempts that fail before settlement (a header that does not decode, a payment that
 * is refused), limited per client address and per payer, so that one caller's junk has a bounded
 * cost: each attempt can cost chain reads, and paid RPC providers bill and throttle per call.
 *
 * - Per client (the request's address after `trustProxy`): every failed attempt spends.
 * - Per payer: only a refusal that came after the payer's signature checked out spends (checkout's
 *   `provenPayer`), so nobody can spend, and so lock out, another payer's budget by naming it.
 *
 * Both are checked before anything is decoded or verified; the refusal the limit causes (429)
 * spends nothing. Per replica, like every limit here (token-buckets.ts): a caller spread over N
 * replicas gets N times the budget.
 */
import { TokenBuckets, type RateLimit } from './token-buckets.js';

export type FailedPaymentLimit = 'client' | 'payer';

/** `limits.failedPayments`. */
export interface FailedPaymentLimits {
  readonly perClient: RateLimit;
  readonly perPayer: RateLimit;
}

export class FailedPaymentAttempts {
  readonly #byClient = new TokenBuckets();
  readonly #byPayer = new TokenBuckets();

  /** Seconds until `client` (and `payer`, when known) may try again, and which limit holds it; undefined: now. */
  wait(
    limits: FailedPaymentLimits,
    client: string,
    payer: string | undefined,
    nowMs: number,
  ): { readonly limit: FailedPaymentLimit; readonly seconds: number } | undefined {
    const byClient = this.#byClient.waitSeconds(client, limits.perClient, nowMs);
    if (byClient > 0) return { limit: 'client', seconds: byClient };
    if (payer === undefined) return undefined;
    const byPayer = this.#byPayer.waitSeconds(payer.toLowerCase(), limits.perPayer, nowMs);
    return byPayer > 0 ? { limit: 'payer', seconds: byPayer } : undefined;
  }

  /** Counts one failed attempt of `client`; of `provenPayer` too, when its signature checked out. */
  count(limits: FailedPaymentLimits, client: string, provenPayer: string | undefined, nowMs: number): void {
    this.#byClient.take(client, limits.perClient, nowMs);
    if (provenPayer !== undefined) this.#byPayer.take(provenPayer.toLowerCase(), limits.perPayer, nowMs);
  }
}
