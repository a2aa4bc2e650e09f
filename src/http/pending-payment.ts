/**
 * One verified, reserved payment and what becomes of it. It is decided exactly once: the first of
 * `settle` or `release` wins, and every later call, from any of the places that may end a request
 * (the paywall under `settlement: before`, reply-from's response and error callbacks, the caller's
 * hang-up, the abort hook), gets that same outcome. So "take the pending payment exactly once" is
 * this object's invariant, not a convention kept in four places.
 *
 * The hang-up rule lives here too (`abandon`): before the request was forwarded, nothing was done,
 * so nothing is charged and the authorization is free again; once forwarded, the upstream may be
 * doing the work, and its answer decides (see proxy.ts).
 */
import type { AuthorizedPayment, Checkout } from '../payments/checkout.js';
import { encodeReceiptHeader, receiptHeaderName } from '../protocol/receipt.js';
import type { Hex } from '../protocol/types.js';
import { GATEWAY_REASON } from '../protocol/reasons.js';
import { deferPolicy } from '../payments/defer-policy.js';

/** Where a deferred payment's settlement can be looked up, under the gateway's own `.well-known`. */
export const SETTLEMENT_STATUS_PATH = '/.well-known/x402/settlements/';

/** How a payment ended. */
export type PaymentOutcome =
  | {
      readonly kind: 'settled';
      readonly transaction: Hex;
      readonly payer: Hex;
      readonly note: string;
      /** A reconciler recorded and counted it before this request could (checkout.ts SettleOutcome). */
      readonly reconciledFirst: boolean;
    }
  | {
      readonly kind: 'failed';
      readonly reason: string;
      readonly transaction?: Hex;
      /** The transaction may still land: the receipt row says `pending`, the nonce stays reserved. */
      readonly pending: boolean;
    }
  | { readonly kind: 'released'; readonly reason: string }
  /** `settlement: deferred`: owed, queued for a batch; `statusUrl` tells queued, settled or failed. */
  | { readonly kind: 'queued'; readonly id: string; readonly payer: Hex; readonly statusUrl: string };

/** A settlement attempt, for metrics. */
export interface SettlementTiming {
  readonly outcome: 'settled' | 'failed' | 'pending';
  readonly mode: 'local' | 'facilitator';
  readonly seconds: number;
}

export interface PendingPaymentDeps {
  readonly checkout: Checkout;
  /** Counts a payment that was forwarded and then released against its payer's limit. */
  readonly countUnchargedForward: (payer: string) => void;
}

export class PendingPayment {
  readonly authorized: AuthorizedPayment;
  readonly #deps: PendingPaymentDeps;
  #decision: Promise<PaymentOutcome> | undefined;
  #outcome: PaymentOutcome | undefined;
  #forwarded = false;
  #settlement: SettlementTiming | undefined;

  /** True for a payment presented again and served again (redelivery.ts): settled long ago, charged nothing now. */
  readonly redelivery: boolean;

  constructor(authorized: AuthorizedPayment, deps: PendingPaymentDeps, settledBefore?: Hex) {
    this.authorized = authorized;
    this.#deps = deps;
    this.redelivery = settledBefore !== undefined;
    if (settledBefore !== undefined) {
      const outcome: PaymentOutcome = { kind: 'settled', transaction: settledBefore, payer: authorized.payer, note: 'redelivered', reconciledFirst: false };
      this.#outcome = outcome;
      this.#decision = Promise.resolve(outcome);
    }
  }

  /**
   * The request paid by this payment ended; `delivered`: its answer (status < 500) reached the
   * caller whole. Only a settled payment's end is recorded: what was never charged may be tried
   * again as it is.
   */
  ended(delivered: boolean): Promise<void> | undefined {
    const outcome = this.#outcome;
    if (outcome?.kind === 'settled' || outcome?.kind === 'queued') return this.#deps.checkout.answerEnded(this.authorized, delivered);
    // Answered `settlement_pending`: the caller got the gateway's 402, not what it paid for.
    if (outcome?.kind === 'failed' && outcome.pending) return this.#deps.checkout.answerEnded(this.authorized, false);
    return undefined;
  }

  /** The outcome once decided; undefined while a settlement or release is still under way. */
  get outcome(): PaymentOutcome | undefined {
    return this.#outcome;
  }

  /** True once `settle` or `release` has been called. */
  get decided(): boolean {
    return this.#decision !== undefined;
  }

  get forwarded(): boolean {
    return this.#forwarded;
  }

  /** The settlement attempt's timing, when there was one. */
  get settlement(): SettlementTiming | undefined {
    return this.#settlement;
  }

  /** The request has been handed to the upstream: from now on its answer decides. */
  markForwarded(): void {
    this.#forwarded = true;
  }

  /**
   * Moves the money, once, or under `settlement: deferred` makes it durably owed (queued) when the
   * route's terms allow. `note` goes in the row (`client_closed`: not delivered).
   */
  settle(note = ''): Promise<PaymentOutcome> {
    return this.#decide(async () => {
      const started = performance.now();
      const a = this.authorized;
      const terms = a.request.route.deferred;
      const result = terms === undefined ? await this.#deps.checkout.settle(a, note) : await this.#deps.checkout.defer(a, deferPolicy(terms, a.option), note);
      if (result.kind === 'queued') {
        return { kind: 'queued', id: result.id, payer: result.payer, statusUrl: `${new URL(a.request.resourceUrl).origin}${SETTLEMENT_STATUS_PATH}${result.id}` };
      }
      this.#settlement = {
        outcome: result.kind === 'settled' ? 'settled' : result.pending ? 'pending' : 'failed',
        mode: this.authorized.option.asset.network.settle.mode,
        seconds: (performance.now() - started) / 1000,
      };
      return result.kind === 'settled' ? { kind: 'settled', transaction: result.transaction, payer: result.payer, note, reconciledFirst: result.reconciledFirst } : result;
    });
  }

  /** Charges nothing, once, and frees the authorization; a forwarded one counts against its payer. */
  release(reason: string): Promise<PaymentOutcome> {
    return this.#decide(async () => {
      if (this.#forwarded) this.#deps.countUnchargedForward(this.authorized.payer);
      await this.#deps.checkout.release(this.authorized, reason);
      return { kind: 'released', reason };
    });
  }

  /** The caller left: released if the request was not forwarded; else the upstream decides. */
  abandon(): Promise<PaymentOutcome> | undefined {
    if (this.#forwarded && !this.decided) return undefined;
    return this.release(GATEWAY_REASON.clientClosed);
  }

  /** The receipt header of the outcome: success with the transaction, or the failure's reason. */
  receiptHeader(): { readonly name: string; readonly value: string } | undefined {
    const outcome = this.#outcome;
    if (outcome === undefined || outcome.kind === 'released') return undefined;
    const a = this.authorized;
    const value =
      outcome.kind === 'settled'
        ? encodeReceiptHeader({ success: true, transaction: outcome.transaction, network: a.payment.network, payer: outcome.payer })
        : outcome.kind === 'queued'
          ? encodeReceiptHeader({ success: true, transaction: '', network: a.payment.network, payer: outcome.payer, extra: { settlement: 'deferred', id: outcome.id, status: outcome.statusUrl } })
          : encodeReceiptHeader({ success: false, transaction: outcome.transaction ?? '', network: a.payment.network, payer: a.payer, errorReason: outcome.reason });
    return { name: receiptHeaderName(a.payment.x402Version), value };
  }

  #decide(run: () => Promise<PaymentOutcome>): Promise<PaymentOutcome> {
    this.#decision ??= run().then((outcome) => (this.#outcome = outcome));
    return this.#decision;
  }
}
