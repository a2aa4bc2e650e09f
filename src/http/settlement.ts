/**
 * What a settlement outcome means for the answer: the request state it leaves (for the receipt
 * header, the log line and the metrics) and the receipt header of a failure. Shared by the
 * paywall (`settlement: before`) and the proxy (`settlement: after`).
 */
import type { AuthorizedPayment, Checkout, SettleOutcome } from '../payments/checkout.js';
import { encodeReceiptHeader, receiptHeaderName } from '../protocol/receipt.js';
import type { RequestState } from './request-state.js';

/**
 * Settles, recording how long it took and how it ended for the metrics. `note` is kept in the
 * settled receipt row (`client_closed`: charged, the answer not delivered).
 */
export async function settleTimed(checkout: Checkout, state: RequestState, a: AuthorizedPayment, note = ''): Promise<SettleOutcome> {
  const started = performance.now();
  const outcome = await checkout.settle(a, note);
  state.settlement = {
    outcome: outcome.kind === 'settled' ? 'settled' : outcome.pending ? 'pending' : 'failed',
    mode: a.option.asset.network.settle.mode,
    seconds: (performance.now() - started) / 1000,
  };
  return outcome;
}

/**
 * Records a settlement outcome in the request state; true when the money moved and the request
 * may be served with its receipt header.
 */
export function applySettlement(state: RequestState, a: AuthorizedPayment, outcome: SettleOutcome): boolean {
  if (outcome.kind !== 'settled') {
    state.outcome = 'refused';
    state.reason = outcome.reason;
    state.transaction = outcome.transaction || undefined;
    return false;
  }
  state.outcome = 'paid';
  state.payer = outcome.payer;
  state.transaction = outcome.transaction;
  state.charged = a.option;
  state.receipt = {
    name: receiptHeaderName(a.payment.x402Version),
    value: encodeReceiptHeader({ success: true, transaction: outcome.transaction, network: a.payment.network, payer: outcome.payer }),
  };
  return true;
}

/** The receipt header of a failed settlement, in the request's protocol version. */
export function failureReceipt(a: AuthorizedPayment, outcome: SettleOutcome): Record<string, string> {
  if (outcome.kind === 'settled') return {};
  return {
    [receiptHeaderName(a.payment.x402Version)]: encodeReceiptHeader({
      success: false,
      transaction: outcome.transaction,
      network: a.payment.network,
      payer: a.payer,
      errorReason: outcome.reason,
    }),
  };
}
