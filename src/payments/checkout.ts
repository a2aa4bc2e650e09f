/**
 * One payment's life, from a decoded header to a receipt row, behind the ports only (no fastify,
 * no viem). The HTTP layer calls `authorize` before forwarding, then exactly one of `settle` or
 * `release`.
 *
 * The replay guard: after verification, the nonce key (chain, asset, payer, nonce) is reserved
 * atomically in the ledger, before anything is forwarded. Of five concurrent copies of one
 * authorization, one reserves and four are refused; none reaches the upstream unpaid. The key is
 * released when nothing was charged (the caller may retry the same authorization) and kept for
 * good once a transaction may have reached the chain.
 *
 * Reverts: a settlement mined and reverted moved nothing but cost the settler its gas (at most
 * `settle.maxGas`), and it got past the simulation, so the same authorization would revert again:
 * its nonce is kept, never released, and the payer is refused for `settle.revertPenaltySeconds`
 * (in the ledger, so every replica refuses it), before its next payment is even verified. One
 * authorization thus buys at most one capped attempt, and a payer at most one per penalty period.
 *
 * Receipts: a `pending` row is written before a settlement is sent, and replaced by its outcome
 * after. A crash in between leaves the pending row, with payer and nonce, for the reconciler
 * (exact-evm/reconciler.ts) to finish from the chain: no money moves without a row.
 *
 * Rows of refusals: only a refusal that came after the payer's signature checked out is written
 * (AFTER_SIGNATURE), with the payer it proves. Anything before (a header naming no offered
 * option, a bad signature, a suspended or unknown payer) is anyone's junk: it is counted in the
 * metrics by its reason, and costs no row, so junk cannot fill the disk.
 *
 * Re-delivery: a kept nonce presented again with the same signature, for the same method and
 * path, by a caller whose paid request ended without delivering its answer, is served again and
 * charged nothing (redelivery.ts judges; `redeliver` below asks the ledger).
 */
import type { PaymentOption, RouteConfig } from '../config/types.js';
import { GATEWAY_REASON, REASON } from '../protocol/reasons.js';
import { selectRequirement } from '../protocol/select-requirement.js';
import type { Address, DecodedPayment, Hex } from '../protocol/types.js';
import { randomBytes } from 'node:crypto';
import type { Clock, ExposureCaps, Ledger, NonceKey, ProofChecker, Receipt, ReceiptStatus, Settler, TxProof, Verifier } from './ports.js';
import { deliveryTerms, judgeRedelivery } from './redelivery.js';
import { WorkInFlight } from './work-in-flight.js';

/** How long a settlement of `option`'s network is waited for: a re-presentation waits as long. */
function settlementWaitMs(option: PaymentOption): number {
  const settle = option.asset.network.settle;
  return settle.mode === 'local' ? settle.receiptTimeoutMs : Math.max(...settle.facilitators.map((f) => f.timeoutMs));
}

export interface CheckoutDeps {
  /** Keyed by network name. */
  readonly verifiers: ReadonlyMap<string, Verifier>;
  readonly settlers: ReadonlyMap<string, Settler>;
  readonly proofs: ReadonlyMap<string, ProofChecker>;
  readonly ledger: Ledger;
  readonly clock: Clock;
  /** Shared by every config's checkout; a drain waits for it. */
  readonly work?: WorkInFlight;
  /** `limits.redeliveries`: answers one authorization may be served again; 0 turns re-delivery off. */
  readonly redeliveries?: number;
}

/**
 * Refusals a verifier gives only once the payer's signature checked out (the reference's order,
 * verify.ts): they prove who was refused. `nonce_already_used` is not one: the verifier's cache
 * answers it for a known nonce before any signature is checked (cached-verifier.ts).
 */
const AFTER_SIGNATURE: ReadonlySet<string> = new Set([
  REASON.recipientMismatch,
  REASON.validBefore,
  REASON.validAfter,
  REASON.valueMismatch,
  REASON.valueV1,
  REASON.insufficientBalance,
  REASON.eip3009NotSupported,
  REASON.settlementGasOverLimit,
]);

/** How often a re-presentation looks again while its settlement is unconfirmed. */
const REDELIVERY_POLL_MS = 250;

/** What the receipt row needs to know about the request. */
export interface PaymentRequestInfo {
  readonly requestId: string;
  readonly route: RouteConfig;
  readonly method: string;
  readonly path: string;
  /** The absolute URL the challenge named; v1 requirements sent to a facilitator carry it. */
  readonly resourceUrl: string;
}

/** A verified payment whose nonce is reserved: it must end in `settle` or `release`. */
export interface AuthorizedPayment {
  readonly payment: DecodedPayment;
  readonly option: PaymentOption;
  readonly payer: Address;
  readonly nonceKey: NonceKey;
  readonly request: PaymentRequestInfo;
}

export type AuthorizeOutcome =
  | { readonly kind: 'authorized'; readonly authorized: AuthorizedPayment }
  /** The same payment presented again by a caller that did not get its answer: serve, charge nothing (redelivery.ts). */
  | { readonly kind: 'redelivery'; readonly authorized: AuthorizedPayment; readonly transaction: Hex }
  /**
   * `transaction`: a re-presentation whose settlement is still unconfirmed (`settlement_pending`).
   * `provenPayer`: the refusal came after the payer's signature checked out (AFTER_SIGNATURE).
   */
  | { readonly kind: 'refused'; readonly reason: string; readonly message?: string; readonly transaction?: Hex; readonly provenPayer?: Address };

export type SettleOutcome =
  | {
      readonly kind: 'settled';
      readonly transaction: Hex;
      readonly payer: Address;
      /**
       * A reconciler (of any replica) saw the transaction mined and recorded the row before this
       * request could: it counted the settlement, so this request must not count it again.
       */
      readonly reconciledFirst: boolean;
    }
  | {
      readonly kind: 'failed';
      readonly reason: string;
      /** The settlement's transaction, when one was made. */
      readonly transaction?: Hex;
      /** The transaction may still land: the receipt row says `pending`, the nonce stays reserved. */
      readonly pending: boolean;
    };

/** What `settlement: deferred` may do with one payment (the route's `deferred` terms, in the option's asset). */
export interface DeferPolicy {
  readonly caps: ExposureCaps;
  /** A payer whose deferred settlement failed is settled at once for this long. */
  readonly penaltySeconds: number;
  /** The authorization must stay valid this long from now to wait for a batch (next flush and a margin). */
  readonly horizonSeconds: number;
}

/** Why a deferred route's payment was settled at once instead of queued. */
export type SynchronousReason = 'exposure_cap' | 'payer_penalised' | 'expires_before_batch';

export type DeferOutcome =
  | { readonly kind: 'queued'; readonly id: string; readonly payer: Address }
  | (SettleOutcome & { readonly synchronous: SynchronousReason });

export type ProofOutcome =
  | { readonly kind: 'accepted'; readonly payer: Address; readonly option: PaymentOption }
  | { readonly kind: 'refused'; readonly reason: string };

export class Checkout {
  private readonly work: WorkInFlight;

  constructor(private readonly deps: CheckoutDeps) {
    this.work = deps.work ?? new WorkInFlight();
  }

  /** Matches, verifies and reserves. Throws only on infrastructure faults (RPC, ledger). */
  async authorize(payment: DecodedPayment, options: readonly PaymentOption[], request: PaymentRequestInfo): Promise<AuthorizeOutcome> {
    const selected = selectRequirement(payment, options);
    if (selected.kind !== 'ok') return { kind: 'refused', reason: selected.reason };
    const option = selected.option;
    // Under `settlement: after` the money moves only after the upstream answered: refuse an
    // authorization that could expire in between, before any work is done on its strength.
    const auth = payment.payload.authorization;
    const minValidity = request.route.minValiditySeconds;
    if (minValidity > 0 && auth.validBefore < this.deps.clock.nowSeconds() + BigInt(minValidity)) {
      return { kind: 'refused', reason: REASON.validBefore };
    }
    const suspendedUntil = await this.deps.ledger.payerPenalty(option.asset.network.chainId, auth.from);
    if (suspendedUntil !== undefined) {
      // Before verification: the claimed payer is unproven here, but a payment naming it could
      // only ever pay as it, and its verification (ERC-1271, an estimate) is what it made costly.
      return { kind: 'refused', reason: REASON.payerSuspended, message: `a settlement of this payer's reverted on chain; refused until ${suspendedUntil} (unix seconds)` };
    }
    const verifier = this.deps.verifiers.get(option.asset.network.name);
    if (!verifier) return { kind: 'refused', reason: GATEWAY_REASON.invalidNetwork };
    const verdict = await verifier.verify(payment, option, { resourceUrl: request.resourceUrl, route: request.route });
    if (!verdict.valid && verdict.reason === REASON.nonceUsed) {
      // Spent on chain: by us, for a caller that may not have had its answer.
      const again = await this.redeliver(payment, option, request);
      if (again) return again;
    }
    if (!verdict.valid) {
      const proven = AFTER_SIGNATURE.has(verdict.reason);
      if (proven) await this.refuse(request, payment, option, verdict.reason);
      return {
        kind: 'refused',
        reason: verdict.reason,
        ...(verdict.message === undefined ? {} : { message: verdict.message }),
        ...(proven ? { provenPayer: auth.from } : {}),
      };
    }
    const nonceKey: NonceKey = { chainId: option.asset.network.chainId, asset: option.asset.address, payer: auth.from, nonce: auth.nonce };
    // Kept until the authorization can no longer be used on chain; validBefore fits a JS number.
    const reserved = await this.deps.ledger.reserveNonce(nonceKey, Number(auth.validBefore));
    if (!reserved) {
      const again = await this.redeliver(payment, option, request);
      if (again) return again;
      // Reserved already (a concurrent or earlier use of the same authorization): the protocol's
      // reason for a used nonce, as the chain would give once it is settled.
      await this.refuse(request, payment, option, REASON.nonceUsed);
      return { kind: 'refused', reason: REASON.nonceUsed };
    }
    return { kind: 'authorized', authorized: { payment, option, payer: verdict.payer, nonceKey, request } };
  }

  /**
   * Moves the money. Never throws for a refused settlement; the outcome says what happened.
   * `note` is kept in the settled row's reason (`client_closed`: the answer was not delivered).
   */
  async settle(a: AuthorizedPayment, note = ''): Promise<SettleOutcome> {
    return this.work.run(async () => {
      const settler = this.deps.settlers.get(a.option.asset.network.name);
      if (!settler) {
        await this.deps.ledger.releaseNonce(a.nonceKey);
        await this.record(a, 'settle_failed', GATEWAY_REASON.settlementNotConfigured, '');
        return { kind: 'failed', reason: GATEWAY_REASON.settlementNotConfigured, pending: false };
      }
      // Before anything is sent: the nonce is kept (no later request can take the reservation
      // over while the transaction is out) and a pending row names the payment, in one write.
      const terms = deliveryTerms(a.payment, a.request.method, a.request.resourceUrl);
      await this.deps.ledger.beginSettlement(a.nonceKey, this.receipt(a, 'pending', GATEWAY_REASON.settling, ''), terms);
      const result = await settler.settle(a.payment, a.option, { resourceUrl: a.request.resourceUrl, route: a.request.route, requestId: a.request.requestId });
      if (result.success) {
        // The money moved: a ledger fault now must not cost the caller the answer it paid for.
        // The pending row already names the payment for reconciliation, and the ledger wrapper
        // logs and counts the fault.
        const written = await this.record(a, 'settled', note, result.transaction).catch(() => true);
        return { kind: 'settled', transaction: result.transaction, payer: result.payer, reconciledFirst: !written };
      }
      if (result.maybeOnChain) {
        await this.record(a, 'pending', result.reason, result.transaction ?? '');
      } else if (result.reverted === true) {
        // The nonce stays kept (beginSettlement kept it): see "Reverts" above.
        await this.penalise(a);
        await this.record(a, 'settle_failed', result.reason, result.transaction ?? '');
      } else {
        await this.deps.ledger.releaseNonce(a.nonceKey);
        await this.record(a, 'settle_failed', result.reason, result.transaction ?? '');
      }
      return { kind: 'failed', reason: result.reason, ...(result.transaction === undefined ? {} : { transaction: result.transaction }), pending: result.maybeOnChain };
    });
  }

  /**
   * `settlement: deferred`: the upstream answered < 400, so the payment is owed. Queued (the nonce
   * kept, the `queued` row and the item written in one durable write) when the policy allows;
   * otherwise settled at once, as `after` would, with the reason. The caller sends the answer
   * only once this resolves, so no answer goes out before its payment is durably owed.
   */
  async defer(a: AuthorizedPayment, policy: DeferPolicy, note = ''): Promise<DeferOutcome> {
    // The row says why it was not deferred (`deferred_exposure_cap`, ...), unless it has a note of its own.
    const synchronous = async (reason: SynchronousReason): Promise<DeferOutcome> => ({ ...(await this.settle(a, note || `deferred_${reason}`)), synchronous: reason });
    const auth = a.payment.payload.authorization;
    const nowMs = this.deps.clock.nowMs();
    if (auth.validBefore < this.deps.clock.nowSeconds() + BigInt(policy.horizonSeconds)) return synchronous('expires_before_batch');
    const failedAt = await this.deps.ledger.lastDeferredFailure(a.nonceKey.chainId, a.payer);
    if (failedAt !== undefined && nowMs - failedAt < policy.penaltySeconds * 1000) return synchronous('payer_penalised');
    const id = randomBytes(16).toString('base64url');
    return this.work.run(async () => {
      const item = { id, requestId: a.request.requestId, route: a.request.route.match, chainId: a.nonceKey.chainId, asset: a.option.asset.address, authorization: auth, signature: a.payment.payload.signature, queuedAtMs: nowMs };
      const terms = deliveryTerms(a.payment, a.request.method, a.request.resourceUrl);
      const queued = await this.deps.ledger.enqueueDeferred(a.nonceKey, this.receipt(a, 'queued', note, ''), item, policy.caps, terms);
      return queued ? { kind: 'queued', id, payer: a.payer } : synchronous('exposure_cap');
    });
  }

  /**
   * A paid (or re-delivered) request ended; `delivered`: its answer had status < 500 and reached
   * the caller whole, so the authorization is spent for good. Else it may be presented again.
   */
  async answerEnded(a: AuthorizedPayment, delivered: boolean): Promise<void> {
    await this.deps.ledger.answerEnded(a.nonceKey, delivered);
  }

  /**
   * The same payment header again, its nonce kept by an earlier request: served again when that
   * request is over and did not deliver, waiting up to the settlement's own wait while it is
   * unconfirmed; undefined when it is a replay (the caller then hears `nonce_already_used`).
   */
  private async redeliver(payment: DecodedPayment, option: PaymentOption, request: PaymentRequestInfo): Promise<AuthorizeOutcome | undefined> {
    const max = this.deps.redeliveries ?? 0;
    if (max === 0) return undefined;
    const auth = payment.payload.authorization;
    const nonceKey: NonceKey = { chainId: option.asset.network.chainId, asset: option.asset.address, payer: auth.from, nonce: auth.nonce };
    const terms = deliveryTerms(payment, request.method, request.resourceUrl);
    const deadline = this.deps.clock.nowMs() + settlementWaitMs(option);
    for (;;) {
      const delivery = await this.deps.ledger.deliveryOf(nonceKey);
      const verdict = judgeRedelivery(delivery, terms, max);
      if (verdict === 'refuse' || delivery === undefined) return undefined;
      if (verdict === 'serve') {
        if (!(await this.deps.ledger.claimRedelivery(nonceKey, max))) return undefined;
        const authorized: AuthorizedPayment = { payment, option, payer: auth.from, nonceKey, request };
        await this.record(authorized, 'redelivered', '', delivery.transaction);
        return { kind: 'redelivery', authorized, transaction: delivery.transaction as Hex };
      }
      if (this.deps.clock.nowMs() >= deadline) {
        await this.refuse(request, payment, option, REASON.settlementPending);
        return { kind: 'refused', reason: REASON.settlementPending, ...(delivery.transaction === '' ? {} : { transaction: delivery.transaction as Hex }) };
      }
      await new Promise((resolve) => setTimeout(resolve, REDELIVERY_POLL_MS));
    }
  }

  /** Nothing is charged (the upstream failed under `settlement: after`): free the nonce for a retry. */
  async release(a: AuthorizedPayment, reason: string): Promise<void> {
    await this.work.run(async () => {
      await this.deps.ledger.releaseNonce(a.nonceKey);
      await this.record(a, 'not_charged', reason, '');
    });
  }

  /**
   * The seed's proof flow: `X-Payment-Proof: <tx hash>` of a plain transfer, signed by its sender
   * for this resource. The first option whose network's chain shows a matching transfer wins, and
   * the hash is then spent forever, so one transfer buys one request. A refused proof spends
   * nothing: a caller with someone else's hash does not take it from the payer who sent it.
   */
  async acceptProof(proof: TxProof, options: readonly PaymentOption[], request: PaymentRequestInfo): Promise<ProofOutcome> {
    const txHash = proof.txHash;
    let reason: string = GATEWAY_REASON.proofNotSupported;
    let signer = '';
    for (const option of options) {
      const checker = this.deps.proofs.get(option.asset.network.name);
      if (!checker) continue;
      const result = await checker.check(proof, option);
      if (!result.ok) {
        reason = result.reason;
        signer = result.signer ?? '';
        continue;
      }
      const claimed = await this.deps.ledger.claimProof(option.asset.network.chainId, txHash);
      const status: ReceiptStatus = claimed ? 'proof_accepted' : 'proof_refused';
      const recorded = this.deps.ledger.record({
        ...this.base(request),
        amount: result.amount.toString(),
        asset: option.asset.address,
        network: option.asset.network.caip2,
        payer: result.payer,
        nonce: '',
        transaction: txHash,
        status,
        reason: claimed ? '' : GATEWAY_REASON.proofAlreadyUsed,
      });
      // Once claimed, the hash is spent for good: the caller must be served even if the receipt
      // row cannot be written (the ledger wrapper logs and counts that failure), as in settle().
      await (claimed ? recorded.catch(() => undefined) : recorded);
      return claimed ? { kind: 'accepted', payer: result.payer, option } : { kind: 'refused', reason: GATEWAY_REASON.proofAlreadyUsed };
    }
    await this.deps.ledger.record({
      ...this.base(request),
      amount: options[0]?.amount.toString() ?? '',
      asset: options[0]?.asset.address ?? '',
      network: options[0]?.asset.network.caip2 ?? '',
      // Who asked, when it was not the sender: the row of an attempt on someone else's transfer.
      payer: signer,
      nonce: '',
      transaction: txHash,
      status: 'proof_refused',
      reason,
    });
    return { kind: 'refused', reason };
  }

  /** Refuses the payer of `a` for its network's `settle.revertPenaltySeconds`, when that is not 0. */
  private async penalise(a: AuthorizedPayment): Promise<void> {
    const network = a.option.asset.network;
    // Only the gateway's own settler pays for a revert; a facilitator's gas is its own business.
    const seconds = network.settle.mode === 'local' ? network.settle.revertPenaltySeconds : 0;
    if (seconds === 0) return;
    await this.deps.ledger.penalisePayer(network.chainId, a.payer, Number(this.deps.clock.nowSeconds()) + seconds);
  }

  /** Records a refusal of a payment that never got as far as a reservation. */
  async refuse(request: PaymentRequestInfo, payment: DecodedPayment | undefined, option: PaymentOption | undefined, reason: string): Promise<void> {
    const auth = payment?.payload.authorization;
    await this.deps.ledger.record({
      ...this.base(request),
      amount: option?.amount.toString() ?? auth?.value.toString() ?? '',
      asset: option?.asset.address ?? '',
      network: option?.asset.network.caip2 ?? payment?.network ?? '',
      payer: auth?.from ?? '',
      nonce: auth?.nonce ?? '',
      transaction: '',
      status: 'refused',
      reason,
    });
  }

  private record(a: AuthorizedPayment, status: ReceiptStatus, reason: string, transaction: string): Promise<boolean> {
    return this.deps.ledger.record(this.receipt(a, status, reason, transaction));
  }

  private receipt(a: AuthorizedPayment, status: ReceiptStatus, reason: string, transaction: string): Receipt {
    return {
      ...this.base(a.request),
      amount: a.option.amount.toString(),
      asset: a.option.asset.address,
      network: a.option.asset.network.caip2,
      payer: a.payer,
      nonce: a.nonceKey.nonce,
      transaction,
      status,
      reason,
    };
  }

  private base(request: PaymentRequestInfo): Pick<Receipt, 'time' | 'requestId' | 'route' | 'method' | 'path'> {
    return {
      time: this.deps.clock.nowMs(),
      requestId: request.requestId,
      route: request.route.match,
      method: request.method,
      path: request.path,
    };
  }
}
