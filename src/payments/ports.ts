/**
 * The seams between the HTTP layer and everything that touches a chain, a facilitator or a disk.
 * `http/` sees `Checkout` and these ports, never a concrete adapter; `src/payment-backends.ts`
 * makes the concrete adapters and `server.ts` wires them (and the ledger) in.
 */
import type { Address, PaymentOption, RouteConfig } from '../config/types.js';
import type { DecodedPayment, Eip3009Authorization, Hex } from '../protocol/types.js';

/** Time, injected so tests control it. */
export interface Clock {
  /** Unix time in whole seconds, as EIP-3009 compares it. */
  nowSeconds(): bigint;
  nowMs(): number;
}

export const systemClock: Clock = {
  nowSeconds: () => BigInt(Math.floor(Date.now() / 1000)),
  nowMs: () => Date.now(),
};

/**
 * Expected outcomes are data: a bad signature or a used nonce is `{ valid: false, reason }` with the
 * protocol's own snake_case reason string. Only infrastructure faults (RPC down) throw.
 */
export type VerifyResult =
  | { readonly valid: true; readonly payer: Address }
  | { readonly valid: false; readonly reason: string; readonly message?: string; readonly payer?: Address };

/**
 * The request a payment is for. v1 requirements name their resource, and facilitators check the
 * payment against the requirement the gateway sends them, so they need it; local checks do not.
 */
export interface PaymentContext {
  readonly resourceUrl: string;
  readonly route: Pick<RouteConfig, 'description' | 'mimeType'>;
  /** The receipt row the settlement pays for (its write-ahead log entry names it). */
  readonly requestId?: string;
}

export interface Verifier {
  /** Checks `payment` against the one requirement it was matched to. Throws only on infrastructure faults. */
  verify(payment: DecodedPayment, option: PaymentOption, context: PaymentContext): Promise<VerifyResult>;
}

/**
 * `maybeOnChain`: the transaction may have reached the chain (sent, receipt not seen), so the
 * nonce must stay reserved and the receipt row says `pending`.
 *
 * `reverted`: the settler's transaction was mined and reverted. Nothing moved (`maybeOnChain` is
 * false), but the settler paid its gas, and whatever made it revert survived the simulation, so
 * trying the same authorization again would only pay for it again: the nonce stays spent.
 */
export type SettleResult =
  | { readonly success: true; readonly transaction: Hex; readonly payer: Address }
  | {
      readonly success: false;
      readonly reason: string;
      readonly message?: string;
      readonly transaction?: Hex;
      readonly maybeOnChain: boolean;
      readonly reverted?: boolean;
    };

export interface Settler {
  /** Moves the money. Never throws: every failure is a `SettleResult` (faults become `unexpected_settle_error`). */
  settle(payment: DecodedPayment, option: PaymentOption, context: PaymentContext): Promise<SettleResult>;
}

/** The replay key of an EIP-3009 authorization: one per (chain, asset, payer, nonce). */
export interface NonceKey {
  readonly chainId: number;
  readonly asset: Address;
  readonly payer: Address;
  readonly nonce: Hex;
}

/** The replay key as one string: chain, asset, payer and nonce, case-folded. */
export function nonceKeyString(key: NonceKey): string {
  return `${key.chainId}:${key.asset.toLowerCase()}:${key.payer.toLowerCase()}:${key.nonce.toLowerCase()}`;
}

export type ReceiptStatus =
  | 'settled' // money moved, tx confirmed
  | 'pending' // tx sent, outcome unknown: reconcile from the chain
  | 'settle_failed' // settlement refused or reverted, nothing charged
  | 'refused' // verification failed, nothing charged
  | 'not_charged' // upstream answered >= 400 under settlement: after
  | 'proof_accepted' // X-Payment-Proof transfer accepted
  | 'proof_refused'
  | 'redelivered' // the same payment presented again and served again, charged nothing (redelivery.ts)
  | 'queued'; // settlement: deferred: verified, served, its authorization in the settlement queue

/**
 * One row per payment outcome. A stored row: its string fields use `''` for "absent" (no payer,
 * nonce or transaction yet), which is their column encoding, so they are not optional here.
 */
export interface Receipt {
  readonly time: number;
  readonly requestId: string;
  readonly route: string;
  readonly method: string;
  readonly path: string;
  /** Atomic units, decimal string. */
  readonly amount: string;
  readonly asset: string;
  readonly network: string;
  readonly payer: string;
  readonly nonce: string;
  readonly transaction: string;
  readonly status: ReceiptStatus;
  readonly reason: string;
}

/**
 * A `pending` row with its authorization's `validBefore` (unix seconds): what a reconciler that
 * follows no transaction of its own needs to decide it from the chain. `validBeforeSeconds` is
 * undefined when the row names no nonce the store keeps.
 */
export interface PendingReceipt extends Receipt {
  readonly validBeforeSeconds: number | undefined;
}

export interface ReceiptQuery {
  readonly limit?: number;
  readonly since?: number;
  /** Only rows of this status. */
  readonly status?: ReceiptStatus;
}

/** The hour `Ledger.hourlyTotals` groups rows by, in ms: buckets start at multiples of it (UTC hours). */
export const HOUR_MS = 3_600_000;

/** Receipt rows of one hour, route, network, asset and status, counted and summed (`Ledger.hourlyTotals`). */
export interface ReceiptTotal {
  /** The hour's first millisecond (unix ms, a multiple of HOUR_MS). */
  readonly hourStartMs: number;
  readonly route: string;
  readonly network: string;
  readonly asset: string;
  readonly status: ReceiptStatus;
  readonly count: number;
  /** The rows' amounts summed exactly: atomic units, decimal string (rows without one count 0). */
  readonly atomic: string;
}

/**
 * Receipt statuses that record money that moved or may have moved. Their rows must survive a
 * power loss; the others (refused, not charged, failed before sending) need only be committed.
 */
export const MONEY_STATUSES: ReadonlySet<ReceiptStatus> = new Set(['settled', 'pending', 'proof_accepted', 'queued']);

/**
 * Rows of outcomes that moved no money and cost the operator nothing: kept for `ledger.retention`,
 * then pruned. Settlement failures (a revert cost gas) and re-deliveries stay with the money rows.
 */
export const PRUNABLE_STATUSES: readonly ReceiptStatus[] = ['refused', 'not_charged', 'proof_refused'];

/** One signed settlement transaction, as the write-ahead log keeps it (before it is broadcast). */
export interface LoggedTransaction {
  readonly hash: Hex;
  /** The signed bytes: sent again as they are when the node has dropped them. */
  readonly raw: Hex;
  /** Wei, decimal strings: what a replacement must outbid. */
  readonly maxFeePerGas: string;
  readonly maxPriorityFeePerGas: string;
}

/** Where a settlement transaction sits: one per (chain, settling account, transaction nonce). */
export interface SettlementSlot {
  readonly chainId: number;
  readonly settler: Address;
  readonly nonce: number;
}

/**
 * What a logged transaction pays for: the receipt rows it settles and the authorization it
 * submits. A filler (a transaction sent only to close a nonce gap) pays for no row.
 */
export interface SettlementEntry extends SettlementSlot {
  readonly requestIds: readonly string[];
  readonly asset: Address;
  readonly payer: Address;
  readonly payTo: Address;
  /** Atomic units, decimal string. */
  readonly amount: string;
  /** The EIP-3009 authorization's nonce. */
  readonly authorizationNonce: Hex;
  /** The authorization's validBefore, unix seconds. */
  readonly validBefore: number;
}

/** A logged settlement whose outcome is not yet recorded: what the reconciler works through. */
export interface OpenSettlement extends SettlementEntry {
  /** `void`: its send was refused, so no transaction of it can be mined and its nonce may be a gap. */
  readonly state: 'open' | 'void';
  /** Oldest first; every one has the same nonce, so at most one is ever mined. */
  readonly transactions: readonly (LoggedTransaction & { readonly sentAtMs: number })[];
  /** The rows it pays for, with their status now. */
  readonly receipts: readonly { readonly requestId: string; readonly status: ReceiptStatus; readonly route: string }[];
}

/** The outcome of a settlement, written to the rows it pays for that are still `pending`. */
export interface SettlementOutcome {
  readonly status: 'settled' | 'settle_failed';
  readonly transaction: Hex | '';
  readonly reason: string;
}

/**
 * The write-ahead settlement log and the settling accounts' transaction nonces, shared by every
 * replica through the store, so replicas with one key never collide and no payment reads the
 * chain's transaction count.
 */
export interface SettlementLog {
  /**
   * The next transaction nonce of `settler` on `chainId`, or undefined when the store has no count
   * for it yet (then `raiseNonceFloor` with the chain's pending count, and take again).
   */
  takeNonce(chainId: number, settler: Address): Promise<number | undefined>;
  /** Moves the next nonce up to `next` when it is below (the chain has seen more); never down. */
  raiseNonceFloor(chainId: number, settler: Address, next: number): Promise<void>;
  /** Hands `nonce` back when it is the last one taken (its send was refused); false when a later one was taken since. */
  returnNonce(slot: SettlementSlot): Promise<boolean>;
  /**
   * Before the first broadcast, durably: the entry, its signed transaction, and the hash on the
   * `pending` rows it pays for.
   */
  logSettlement(entry: SettlementEntry, transaction: LoggedTransaction): Promise<void>;
  /** Before a replacement (same nonce, higher fee) or another transaction of the slot is broadcast, durably. */
  logReplacement(slot: SettlementSlot, transaction: LoggedTransaction): Promise<void>;
  /** Its send was refused: nothing of this slot can be mined. The reconciler fills the nonce if it is a gap. */
  voidSettlement(slot: SettlementSlot): Promise<void>;
  /**
   * Closes the slot's entry; with an outcome, durably writes it to the entry's rows that are
   * still `pending` (rows another path already finished are left as they are). Resolves to the
   * request ids of the rows it wrote, so that only those are counted (the settling request may
   * have finished the others a moment before).
   */
  closeSettlement(slot: SettlementSlot, outcome?: SettlementOutcome): Promise<readonly string[]>;
  /** Open and void entries of `settler` on `chainId`, lowest nonce first. */
  openSettlements(chainId: number, settler: Address, limit: number): Promise<OpenSettlement[]>;
  /**
   * Takes or renews the lease `name` for `holder` until `ttlMs` from now (by the store's clock).
   * True while `holder` has it; false while another holder's lease is in force.
   */
  holdLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
}

/**
 * `settlement: deferred`: an authorization verified, its answer served, its settlement owed.
 * `queued` until a batch takes it, `batched` while that batch's transaction is out, then
 * `settled` or `failed` (served, never paid: bad debt).
 */
export type DeferredState = 'queued' | 'batched' | 'settled' | 'failed';

/** One authorization in the settlement queue, with what a batch needs to submit it. */
export interface DeferredItem {
  /** Unguessable: the status URL names it (`/.well-known/x402/settlements/:id`). */
  readonly id: string;
  /** The receipt row it pays for. */
  readonly requestId: string;
  /** The route's `match`, for the revenue counted when it settles. */
  readonly route: string;
  readonly chainId: number;
  readonly asset: Address;
  readonly authorization: Eip3009Authorization;
  readonly signature: Hex;
  /** Unix ms. */
  readonly queuedAtMs: number;
}

/** What the status endpoint and the dashboard say of an item. */
export interface DeferredStatus {
  readonly id: string;
  readonly requestId: string;
  readonly state: DeferredState;
  /** The batch transaction, once one was made; `''` before. */
  readonly transaction: Hex | '';
  readonly reason: string;
  readonly queuedAtMs: number;
}

/** A batch's outcome for one of its items. */
export interface DeferredOutcome {
  readonly id: string;
  readonly state: 'settled' | 'failed';
  readonly transaction: Hex | '';
  readonly reason: string;
}

/**
 * Atomic units a deferred enqueue may bring the unsettled (queued or batched) amount of one
 * asset on one chain to: of its payer, and in total. Beyond either, the request settles at once.
 */
export interface ExposureCaps {
  readonly perPayer: bigint;
  readonly total: bigint;
}

/** How much is owed, for the metrics: items queued or batched, and the oldest's age. */
export interface QueueStats {
  readonly count: number;
  /** Atomic units unsettled, per `chainId:asset`. */
  readonly amounts: ReadonlyMap<string, bigint>;
  readonly oldestQueuedAtMs: number | undefined;
}

/**
 * The settlement queue of `settlement: deferred`, in the store every replica shares, so an item
 * queued by a replica that dies is settled by another, and the exposure caps hold across all.
 */
export interface SettlementQueue {
  /**
   * In one durable write, when `caps` allow: keeps the nonce, records the `queued` receipt row,
   * queues the item and adds its amount to its payer's and the total unsettled exposure.
   * Resolves false, writing nothing, when either cap would be passed.
   */
  enqueueDeferred(key: NonceKey, receipt: Receipt, item: DeferredItem, caps: ExposureCaps, terms?: DeliveryTerms): Promise<boolean>;
  /** Up to `limit` `queued` items on `chainId`, oldest first. */
  queuedDeferred(chainId: number, limit: number): Promise<DeferredItem[]>;
  /**
   * Before the first broadcast of a batch, durably: the settlement log entry and its transaction
   * (as `logSettlement`), and `itemIds` moved from `queued` to `batched` on the entry's slot. All
   * or nothing: resolves false, writing nothing, when any item is no longer `queued` (another
   * batcher took it), so no item is ever in two batches.
   */
  logBatch(entry: SettlementEntry, transaction: LoggedTransaction, itemIds: readonly string[]): Promise<boolean>;
  /** The items a batch slot carries. */
  batchItems(slot: SettlementSlot): Promise<DeferredItem[]>;
  /**
   * Durably: each item's outcome, on the item and on its receipt row while that row is still
   * `queued`, and its amount taken off the exposure. Resolves to the request ids of the rows
   * written (an item already finished is left as it is).
   */
  finishDeferred(outcomes: readonly DeferredOutcome[]): Promise<readonly string[]>;
  /** A batch that can never be mined (its slot was filled by another transaction): its items are queued again. */
  requeueBatch(slot: SettlementSlot): Promise<number>;
  deferredStatus(id: string): Promise<DeferredStatus | undefined>;
  /**
   * When (unix ms, by the store's clock) a deferred settlement of `payer` on `chainId` last
   * failed; undefined if none did. Such a payer is served only synchronously for a while.
   */
  lastDeferredFailure(chainId: number, payer: Address): Promise<number | undefined>;
  queueStats(): Promise<QueueStats>;
}

/**
 * What a kept authorization was bought for, so that the same payment header, presented again,
 * can be served again without a second charge (re-delivery; checkout.ts).
 */
export interface DeliveryTerms {
  /** `METHOD /path?query`: the one request the authorization pays for. */
  readonly resource: string;
  /** sha256 of the authorization's signature: a re-presentation must carry the same one. */
  readonly signature: string;
}

/** A kept authorization's delivery state, with the status of the receipt row it settled. */
export interface Delivery extends DeliveryTerms {
  readonly requestId: string;
  /** The request that paid has been answered (or its caller left): a later one is not a copy in flight. */
  readonly ended: boolean;
  /** An answer with status < 500 reached the caller completely: no re-delivery from now on. */
  readonly delivered: boolean;
  readonly redeliveries: number;
  /** The receipt row's status (undefined: no row, e.g. before the pending row was written). */
  readonly status: ReceiptStatus | undefined;
  readonly transaction: string;
  readonly payer: string;
  /** The row's reason: `reconciled` when the reconciler, not the paying request, recorded it. */
  readonly reason: string;
}

/**
 * Durable state. Methods are async so a shared store (Postgres) can implement the same interface.
 *
 * Every write is committed (visible to every later call, of any replica) before it resolves.
 * Those that record money, `beginSettlement`, `claimProof` and `record` of a MONEY_STATUSES row,
 * are also on disk by then (fsync). Reservations, releases and rows of outcomes that moved nothing
 * need not be: a reservation guards only requests in flight, which a power loss ends anyway, and
 * nothing is charged while a reservation alone exists; so a store may skip the fsync for them,
 * which is a third of a paid request's disk syncs and every refused request's.
 */
export interface Ledger extends SettlementLog, SettlementQueue {
  /** Atomically reserves a nonce key. False when it is already reserved or spent. */
  reserveNonce(key: NonceKey, expiresAtSeconds: number): Promise<boolean>;
  /**
   * Frees a nonce key when nothing was charged (the upstream failed, or a settlement certainly
   * never landed), so the caller may retry the same authorization.
   */
  releaseNonce(key: NonceKey): Promise<void>;
  /**
   * Before a settlement is sent, in one durable write: keeps the nonce for good (the transaction
   * may reach the chain) and records the `pending` receipt, so there is never a kept nonce without
   * its row, nor a sent settlement without both.
   */
  beginSettlement(key: NonceKey, pending: Receipt, terms?: DeliveryTerms): Promise<void>;
  /** The delivery state of a kept nonce key; undefined when it is not kept (free, or only reserved). */
  deliveryOf(key: NonceKey): Promise<Delivery | undefined>;
  /**
   * Counts one re-delivery of a kept key, atomically: false when an answer was delivered already
   * or `max` re-deliveries were counted.
   */
  claimRedelivery(key: NonceKey, max: number): Promise<boolean>;
  /**
   * A request paid by (or re-delivered on) the key has ended; `delivered`: its answer had status
   * < 500 and reached the caller completely. Never undoes a delivery. Need not be on disk.
   */
  answerEnded(key: NonceKey, delivered: boolean): Promise<void>;
  /** Records a tx hash as spent, once. False when it was spent before. */
  claimProof(chainId: number, txHash: Hex): Promise<boolean>;
  /**
   * Refuses `payer` on chain `chainId` until the unix second `untilSeconds` (a settlement of its
   * was mined and reverted). A later expiry replaces an earlier one, never the reverse. Need not
   * be on disk when it resolves: a power loss can cost at most one more capped revert.
   */
  penalisePayer(chainId: number, payer: Address, untilSeconds: number): Promise<void>;
  /** The unix second `payer`'s refusal on `chainId` ends, while it is in force (by the store's clock); else undefined. */
  payerPenalty(chainId: number, payer: Address): Promise<number | undefined>;
  /**
   * Writes a receipt before it resolves: on disk when its status is one of MONEY_STATUSES. A row
   * that holds a settlement's outcome (`settled`, `settle_failed`) is final: a later write to it
   * is left out, and resolves false (the settling request and a reconciler may both finish one
   * row; the first wins, and only it counts the outcome). Else true.
   */
  record(receipt: Receipt): Promise<boolean>;
  receipts(query: ReceiptQuery): Promise<Receipt[]>;
  /** The rows of the hours from `sinceMs` on (unix ms; a partial hour is left out), counted and summed per hour, route, network, asset and status, in the store. */
  hourlyTotals(sinceMs: number): Promise<ReceiptTotal[]>;
  /** How many rows are `pending`, and the time (unix ms) of the oldest: what the reconciler has yet to finish. */
  pendingReceipts(): Promise<{ readonly count: number; readonly oldestTimeMs: number | undefined }>;
  /** Up to `limit` `pending` rows of `network` (CAIP-2) written before `olderThanMs` (unix ms), oldest first. */
  pendingRows(network: string, olderThanMs: number, limit: number): Promise<PendingReceipt[]>;
  /**
   * Deletes up to `limit` rows of PRUNABLE_STATUSES older than `olderThanMs` (unix ms), and up to
   * `limit` reservations that have expired (by the store's clock): how many it deleted.
   */
  prune(olderThanMs: number, limit: number): Promise<number>;
  /** Resolves when the store answers a query; rejects when it cannot (readiness and metrics ask). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The seed's proof flow: a plain on-chain transfer, named by its transaction hash, and the
 * transaction sender's signature over that hash and the resource (`proofMessage` in
 * protocol/proof-message.ts). The hash alone is public, so it proves nothing about the caller.
 */
export interface TxProof {
  readonly txHash: Hex;
  /** 65 bytes, 0x hex: the EIP-191 (`personal_sign`) signature of `proofMessage(txHash, resourceUrl)`. */
  readonly signature: Hex;
  /** The absolute URL the challenge named for this request; the signature must name the same. */
  readonly resourceUrl: string;
}

export type ProofResult =
  | { readonly ok: true; readonly payer: Address; readonly amount: bigint }
  /** `signer`: who signed, when that is not the transaction's sender (for the receipt row). */
  | { readonly ok: false; readonly reason: string; readonly signer?: Address };

export interface ProofChecker {
  /**
   * Checks that the signer of `proof` sent a transaction that paid `option` (asset, payTo, amount,
   * confirmations, age). Throws only on infrastructure faults.
   */
  check(proof: TxProof, option: PaymentOption): Promise<ProofResult>;
}
