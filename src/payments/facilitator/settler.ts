/**
 * `Settler` over an ordered list of facilitators.
 *
 * Falling back to the next facilitator after one that gave no answer is safe for the payer: an
 * EIP-3009 authorization moves money at most once, whoever submits it. What fallback cannot undo
 * is doubt: once a facilitator may have received the request (timeout, reset, 5xx, malformed
 * 2xx) it may also have broadcast it, so every failure after that point carries
 * `maybeOnChain: true` and the nonce stays reserved until the chain says otherwise. (A later
 * facilitator's `…nonce_already_used` is then most likely the earlier one's success.)
 *
 * A facilitator that refused the gateway's credentials (401/403) did not act on the request, so
 * the next one is asked as after an unreachable one. If none settled and nothing may have been
 * received anywhere, the failure says `facilitator_auth_refused`: nothing was charged, and the
 * HTTP layer answers it as the fault it is (502 `GW_ERR_FACILITATOR_AUTH`), not with a 402 that
 * asks the payer to pay again. Once an earlier facilitator may have received it, that doubt
 * decides: `unexpected_settle_error`, maybe on chain.
 *
 * `settlement_pending` with a tx hash means the facilitator broadcast and stopped waiting; like
 * `@x402/core` 2.24+ we ask the same facilitator once more, which reconciles against the tx it
 * remembers instead of broadcasting again. Still pending after that: `maybeOnChain`.
 */
import type { PaymentOption } from '../../config/types.js';
import { isTxHash, type DecodedPayment, type Hex } from '../../protocol/types.js';
import type { FacilitatorSettleAnswer } from './answers.js';
import type { FacilitatorClient, FacilitatorFailure } from './client.js';
import { facilitatorRequestBody } from './request.js';
import { GATEWAY_REASON, REASON } from '../../protocol/reasons.js';
import type { PaymentContext, SettleResult, Settler } from '../ports.js';

/** Protocol reasons are snake_case; anything else is an exception message passed through as a reason. */
const PROTOCOL_REASON = /^[a-z0-9_]+$/;

export class FacilitatorSettler implements Settler {
  readonly #clients: readonly FacilitatorClient[];

  constructor(clients: readonly FacilitatorClient[]) {
    if (clients.length === 0) throw new Error('FacilitatorSettler needs at least one facilitator');
    this.#clients = clients;
  }

  /** Never throws. `context` is the request a v1 payment was made for, as for `FacilitatorVerifier.verify`. */
  async settle(payment: DecodedPayment, option: PaymentOption, context: PaymentContext): Promise<SettleResult> {
    const body = facilitatorRequestBody(payment, option, context);
    if (body === undefined) {
      return { success: false, reason: GATEWAY_REASON.invalidNetwork, message: 'x402 v1 cannot pay on this network', maybeOnChain: false };
    }

    let doubt = false;
    const failures: FacilitatorFailure[] = [];
    for (const client of this.#clients) {
      const outcome = await client.settle(body);
      if (outcome.kind === 'unavailable') {
        failures.push(outcome.failure);
        doubt ||= outcome.failure.mayHaveReceived;
        continue;
      }
      const answer = outcome.answer;
      if (!isRetryablePending(answer)) return settleResult(answer, payment, option, doubt);
      const first = answer.transaction;
      const retry = await client.settle(body);
      if (retry.kind === 'unavailable') return pending(first, retry.failure.message);
      const second = retry.answer;
      if (isRetryablePending(second)) return pending(second.transaction, second.errorMessage);
      // The first attempt broadcast `first`, and that alone can spend the authorization: a retry
      // refused with `nonce_already_used` (a facilitator that restarted and forgot it) may mean
      // exactly that. Only a report that `first` itself reverted says nothing moved.
      const firstReverted = !second.success && second.errorReason === REASON.transactionFailed && second.transaction === first;
      return settleResult({ ...second, transaction: isTxHash(second.transaction) ? second.transaction : first }, payment, option, doubt || !firstReverted);
    }
    const refused = !doubt && failures.some((f) => f.kind === 'auth_refused');
    return {
      success: false,
      reason: refused ? GATEWAY_REASON.facilitatorAuthRefused : REASON.unexpectedSettleError,
      message: `no facilitator could settle the payment: ${failures.map((f) => f.message).join('; ')}`,
      maybeOnChain: doubt,
    };
  }
}

function isRetryablePending(answer: FacilitatorSettleAnswer): answer is FacilitatorSettleAnswer & { transaction: Hex } {
  return !answer.success && answer.errorReason === REASON.settlementPending && isTxHash(answer.transaction);
}

function pending(transaction: Hex, message: string | undefined): SettleResult {
  return {
    success: false,
    reason: REASON.settlementPending,
    ...(message === undefined ? {} : { message }),
    transaction,
    maybeOnChain: true,
  };
}

function settleResult(answer: FacilitatorSettleAnswer, payment: DecodedPayment, option: PaymentOption, doubt: boolean): SettleResult {
  const hash = answer.transaction;
  const transaction = isTxHash(hash) ? { transaction: hash } : {};
  const { network } = option.asset;
  if (answer.success) {
    // The client checked the hash. A success on a chain we did not ask for is not one we can record.
    if (answer.network !== undefined && answer.network !== network.caip2 && answer.network !== network.v1Name) {
      return {
        success: false,
        reason: REASON.unexpectedSettleError,
        message: `facilitator reported settlement on network "${answer.network}", expected ${network.caip2}`,
        ...transaction,
        maybeOnChain: true,
      };
    }
    // Unreachable: the client reads a success without a valid hash as malformed.
    if (!isTxHash(hash)) return { success: false, reason: REASON.unexpectedSettleError, maybeOnChain: true };
    return { success: true, transaction: hash, payer: payment.payload.authorization.from };
  }

  const reported = answer.errorReason ?? REASON.unexpectedSettleError;
  // `@x402/evm`'s v1 settle returns a thrown error's message as the reason, e.g. a receipt-wait
  // timeout after broadcast, with no tx hash: an exception mid-settlement, outcome unknown.
  if (!PROTOCOL_REASON.test(reported)) {
    return { success: false, reason: REASON.unexpectedSettleError, message: reported, ...transaction, maybeOnChain: true };
  }
  return {
    success: false,
    reason: reported,
    ...(answer.errorMessage === undefined ? {} : { message: answer.errorMessage }),
    ...transaction,
    // A failure that names a transaction hash means something was broadcast, and unless the
    // facilitator says it reverted, it may still land (one whose pending store failed answers
    // `invalid_transaction_state` with the hash). `transferEventMismatch` is reported after the
    // transfer was mined successfully: the authorization is spent.
    maybeOnChain:
      doubt ||
      (isTxHash(hash) && reported !== REASON.transactionFailed) ||
      reported === REASON.settlementPending ||
      reported === REASON.transferEventMismatch,
  };
}
