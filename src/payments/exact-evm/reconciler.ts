/**
 * The settlement reconciler of one settling account on one chain. Every replica runs one; the
 * store's lease lets one at a time do the work, and a replica that dies loses the lease within
 * LEASE_TTL_MS, so another takes over its unfinished settlements.
 *
 * It works from the write-ahead settlement log (ports.ts `SettlementLog`), lowest nonce first,
 * and compares each open entry with the chain:
 *
 *   - its nonce is mined (below the account's mined count): the receipt of whichever of its
 *     transactions was mined decides the rows it pays for, `settled` (succeeded, and the Transfer
 *     it was for is in the logs) or `settle_failed` (reverted, or none of its transactions was
 *     mined: the nonce went to something else); rows another path already finished are left;
 *   - not mined, and the node no longer knows its newest transaction (dropped from the mempool,
 *     a node restart): the same signed bytes are sent again, so the nonce never becomes a gap
 *     that stalls every later settlement of the key;
 *   - not mined after `replaceAfterMs` (or evicted by the node), and priced below the going fee:
 *     signed again with the same nonce and a higher fee (a replacement, logged before it is sent);
 *   - void (its send was refused) or a nonce taken and never logged, below a later entry: filled
 *     with a zero-value transaction to the account itself, so the nonces after it can be mined.
 *
 * Each tick ends within the RPC timeouts; ticks never overlap.
 */
import { isAddressEqual, keccak256, parseEventLogs, parseTransaction, TransactionReceiptNotFoundError, type TransactionReceipt } from 'viem';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import type { Clock, DeferredItem, DeferredOutcome, LoggedTransaction, OpenSettlement, SettlementLog, SettlementOutcome, SettlementQueue, SettlementSlot } from '../ports.js';
import { GATEWAY_REASON, REASON } from '../../protocol/reasons.js';
import { eip3009Abi } from './abi.js';
import { loggedFees, type FeeEstimate, type Fees } from './fee-estimate.js';
import { PeriodicTask } from '../periodic-task.js';
import type { TransactionSigner } from './transaction-signer.js';
import { finishBatch, isBatchEntry } from './batch-outcome.js';

/** How often a reconciler looks, by default. Outcomes reach the rows within about two of these. */
export const DEFAULT_RECONCILE_INTERVAL_MS = 2_000;
/** A lease not renewed for this long is free: a killed replica's work moves within it. */
export const LEASE_TTL_MS = 6_000;
/** How long an unmined transaction may go unseen by the node before it is sent again. */
export const REBROADCAST_AFTER_MS = 5_000;
/** How long a nonce may stay a gap below a later entry before it is filled (its taker may still be logging it). */
export const GAP_GRACE_MS = 10_000;
/** A replacement outbids the transaction it replaces by at least this (nodes ask 10%), in per mille. */
const REPLACEMENT_BUMP_PER_MILLE = 125n;
/** Entries looked at per tick. */
const BATCH = 200;
/** Gas of a plain value transfer: what a filler costs. */
const FILLER_GAS = 21_000n;

export interface ReconcilerCounters {
  rebroadcasts: number;
  replacements: number;
  fillers: number;
  settled: number;
  failed: number;
}

export interface ReconcilerOptions {
  readonly log: SettlementLog;
  /**
   * The settlement queue, where `settlement: deferred` batches are settled: a batch's slot is
   * finished item by item from it. Without it, batch entries are left open, never closed blind.
   */
  readonly queue?: SettlementQueue;
  /** Each deferred item of a batch it finished, with its outcome. */
  readonly onDeferredItem?: (item: DeferredItem, outcome: DeferredOutcome) => void;
  readonly client: ChainClient;
  readonly signer: TransactionSigner;
  /** Sends signed bytes (the settler's send transport). */
  readonly send: (raw: Hex) => Promise<unknown>;
  readonly fees: FeeEstimate;
  readonly clock: Clock;
  /** This replica, as the lease names its holder. */
  readonly holder: string;
  /** After how long an unmined transaction below the going fee is replaced. */
  readonly replaceAfterMs: number;
  readonly intervalMs?: number;
  /** GAP_GRACE_MS by default. */
  readonly gapGraceMs?: number;
  /** Called once per entry whose rows it finished, with what it wrote and to which rows (request ids). */
  readonly onOutcome?: (entry: OpenSettlement, outcome: SettlementOutcome, requestIds: readonly string[]) => void;
  /** Faults of a tick (the chain or the store did not answer); the next tick tries again. */
  readonly onError?: (err: unknown) => void;
}

export class SettlementReconciler {
  readonly counters: ReconcilerCounters = { rebroadcasts: 0, replacements: 0, fillers: 0, settled: 0, failed: 0 };
  readonly #o: ReconcilerOptions;
  readonly #chainId: number;
  readonly #address: Address;
  readonly #task: PeriodicTask;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
    this.#chainId = options.client.chain.id;
    this.#address = options.signer.address;
    this.#task = new PeriodicTask(() => this.#tick(), options.intervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS, (err) => options.onError?.(err));
  }

  /** Starts looking every interval (the timer does not keep the process alive). */
  start(): void {
    this.#task.start();
  }

  /** Stops the timer and waits for a tick in progress. */
  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** One pass, unless one is running (then its promise). Never rejects. */
  tick(): Promise<void> {
    return this.#task.pass();
  }

  async #tick(): Promise<void> {
    const lease = `reconcile:${this.#chainId}:${this.#address.toLowerCase()}`;
    if (!(await this.#o.log.holdLease(lease, this.#o.holder, LEASE_TTL_MS))) return;
    const entries = await this.#o.log.openSettlements(this.#chainId, this.#address, BATCH);
    if (entries.length === 0) return;
    const mined = await this.#o.client.getTransactionCount({ address: this.#address, blockTag: 'latest' });
    const now = this.#o.clock.nowMs();
    for (const entry of entries) {
      if (entry.nonce < mined) await this.#finish(entry);
      else if (entry.state === 'void' || entry.transactions.length === 0) await this.#fill(entry);
      else await this.#nudge(entry, now);
    }
    await this.#fillGaps(entries, mined, now);
  }

  /** The entry's nonce is mined: record what happened to the rows it pays for. */
  async #finish(entry: OpenSettlement): Promise<void> {
    const slot = slotOf(entry);
    if (isBatchEntry(entry)) {
      await this.#finishBatch(entry);
      return;
    }
    if (entry.requestIds.length > 0 && entry.receipts.length === entry.requestIds.length && entry.receipts.every((r) => r.status !== 'pending')) {
      // The settling request recorded the outcome itself (the usual case): nothing to look up.
      await this.#o.log.closeSettlement(slot);
      return;
    }
    const receipt = await this.#minedReceipt(entry);
    if (entry.requestIds.length === 0) {
      // A filler: nothing to record.
      await this.#o.log.closeSettlement(slot);
      return;
    }
    let outcome: SettlementOutcome;
    if (receipt === undefined) {
      outcome = { status: 'settle_failed', transaction: '', reason: entry.state === 'void' ? GATEWAY_REASON.settlementNotSent : GATEWAY_REASON.settlementNonceUsedElsewhere };
    } else if (receipt.status !== 'success') {
      outcome = { status: 'settle_failed', transaction: receipt.transactionHash, reason: REASON.transactionFailed };
    } else if (!paidFor(entry, receipt)) {
      // Mined without the Transfer it was for: not ours to call either way. The rows stay
      // pending (the pending gauge shows them) for a person to look at.
      await this.#o.log.closeSettlement(slot);
      return;
    } else {
      outcome = { status: 'settled', transaction: receipt.transactionHash, reason: GATEWAY_REASON.reconciled };
    }
    // The store says which rows it wrote: the settling request may have finished them between
    // the read above and now, and then they are its to count, not ours.
    const written = await this.#o.log.closeSettlement(slot, outcome);
    if (written.length > 0) {
      if (outcome.status === 'settled') this.counters.settled++;
      else this.counters.failed++;
      this.#o.onOutcome?.(entry, outcome, written);
    }
  }

  /**
   * A batch's nonce is mined: its items still `batched` (the batcher did not see the receipt)
   * are finished from it; none of its transactions mined (the nonce went to a filler or another
   * transaction), they go back in the queue for the next batch.
   */
  async #finishBatch(entry: OpenSettlement): Promise<void> {
    const queue = this.#o.queue;
    if (queue === undefined) return;
    const slot = slotOf(entry);
    const items = await queue.batchItems(slot);
    if (items.length > 0) {
      const receipt = await this.#minedReceipt(entry);
      if (receipt === undefined) await queue.requeueBatch(slot);
      else await finishBatch(queue, slot, items, receipt, this.#o.onDeferredItem);
    }
    await this.#o.log.closeSettlement(slot);
  }

  /** The receipt of whichever of the entry's transactions was mined, newest first. */
  async #minedReceipt(entry: OpenSettlement): Promise<TransactionReceipt | undefined> {
    for (const tx of [...entry.transactions].reverse()) {
      try {
        return await this.#o.client.getTransactionReceipt({ hash: tx.hash });
      } catch (err) {
        if (!(err instanceof TransactionReceiptNotFoundError)) throw err;
      }
    }
    return undefined;
  }

  /**
   * Not mined yet. Priced below the going fee, it is replaced (same nonce, higher fee) once it
   * has waited `replaceAfterMs`, or at once if the node no longer has it (a node evicts what is
   * priced under its base fee, and would refuse the same bytes again); priced well enough but
   * lost by the node, the same bytes are sent again.
   */
  async #nudge(entry: OpenSettlement, now: number): Promise<void> {
    const newest = entry.transactions[entry.transactions.length - 1];
    if (newest === undefined) return;
    const known = await this.#o.client.getTransaction({ hash: newest.hash }).then(
      () => true,
      () => false,
    );
    const age = now - newest.sentAtMs;
    if (known && age < this.#o.replaceAfterMs) return;
    if (!known && age < REBROADCAST_AFTER_MS) return;
    const bid = outbid(newest, await this.#o.fees.fees());
    if (bid !== undefined && (!known || age >= this.#o.replaceAfterMs)) {
      await this.#replace(entry, newest, bid);
      return;
    }
    if (!known) {
      await this.#o.send(newest.raw).catch(() => undefined);
      this.counters.rebroadcasts++;
    }
  }

  /** Signs `newest`'s call again with the same nonce and the fees `bid`, logs it, sends it. */
  async #replace(entry: OpenSettlement, newest: LoggedTransaction, bid: Fees): Promise<void> {
    const tx = parseTransaction(newest.raw);
    if (tx.to == null || tx.gas === undefined) return;
    const raw = await this.#o.signer.sign({ chainId: this.#chainId, to: tx.to, data: tx.data ?? '0x', value: tx.value ?? 0n, gas: tx.gas, nonce: entry.nonce, ...bid });
    await this.#sendLogged(slotOf(entry), raw, bid);
    this.counters.replacements++;
  }

  /** A slot with no transaction that can be mined: fill it so the nonces after it can be. */
  async #fill(entry: SettlementSlot): Promise<void> {
    const filler = await this.#signFiller(entry.nonce);
    await this.#o.log.logReplacement(entry, filler);
    await this.#o.send(filler.raw).catch(() => undefined);
    this.counters.fillers++;
  }

  /** A zero-value transfer to the settling account itself at `nonce`, at the going fee. */
  async #signFiller(nonce: number): Promise<LoggedTransaction> {
    const fees = await this.#o.fees.fees();
    const raw = await this.#o.signer.sign({ chainId: this.#chainId, to: this.#address, value: 0n, gas: FILLER_GAS, nonce, ...fees });
    return { hash: keccak256(raw), raw, ...loggedFees(fees) };
  }

  /**
   * Nonces below the highest open entry that no entry holds (taken, then neither logged nor
   * handed back: a crash or a store fault in between) are gaps once the entry above is older
   * than GAP_GRACE_MS: each gets a filler entry.
   */
  async #fillGaps(entries: readonly OpenSettlement[], mined: number, now: number): Promise<void> {
    const held = new Set(entries.map((e) => e.nonce));
    const grace = this.#o.gapGraceMs ?? GAP_GRACE_MS;
    const above = entries.filter((e) => (e.transactions[0]?.sentAtMs ?? now) <= now - grace).map((e) => e.nonce);
    if (above.length === 0 || entries.length >= BATCH) return;
    const top = Math.max(...above);
    for (let nonce = mined; nonce < top; nonce++) {
      if (held.has(nonce)) continue;
      const filler = await this.#signFiller(nonce);
      await this.#o.log.logSettlement(fillerEntry(this.#chainId, this.#address, nonce), filler);
      await this.#o.send(filler.raw).catch(() => undefined);
      this.counters.fillers++;
    }
  }

  /** Logs another transaction of `slot` (write-ahead), then sends it; a failed send is retried next tick. */
  async #sendLogged(slot: SettlementSlot, raw: Hex, fees: Fees): Promise<void> {
    await this.#o.log.logReplacement(slot, { hash: keccak256(raw), raw, ...loggedFees(fees) });
    await this.#o.send(raw).catch(() => undefined);
  }
}

function slotOf(entry: SettlementSlot): SettlementSlot {
  return { chainId: entry.chainId, settler: entry.settler, nonce: entry.nonce };
}

/** Does the receipt carry the Transfer the entry was for: payer to payee, the amount, in the asset? */
function paidFor(entry: OpenSettlement, receipt: TransactionReceipt): boolean {
  const transfers = parseEventLogs({ abi: eip3009Abi, eventName: 'Transfer', logs: receipt.logs.filter((log) => isAddressEqual(log.address, entry.asset)) });
  return transfers.some(
    (log) => isAddressEqual(log.args.from, entry.payer) && isAddressEqual(log.args.to, entry.payTo) && log.args.value === BigInt(entry.amount),
  );
}

/**
 * The fees of a replacement for `tx`, when the going fee is above what it offered: the going
 * fee, and at least REPLACEMENT_BUMP_PER_MILLE over the old one (nodes refuse a smaller bump).
 */
export function outbid(tx: LoggedTransaction, going: Fees): Fees | undefined {
  const bump = (old: bigint) => old + (old * REPLACEMENT_BUMP_PER_MILLE + 999n) / 1000n;
  const oldMax = BigInt(tx.maxFeePerGas);
  const oldTip = BigInt(tx.maxPriorityFeePerGas);
  if (going.type === 'legacy') {
    return going.gasPrice > oldMax ? { type: 'legacy', gasPrice: max(going.gasPrice, bump(oldMax)) } : undefined;
  }
  if (going.maxFeePerGas <= oldMax && going.maxPriorityFeePerGas <= oldTip) return undefined;
  return { type: 'eip1559', maxFeePerGas: max(going.maxFeePerGas, bump(oldMax)), maxPriorityFeePerGas: max(going.maxPriorityFeePerGas, bump(oldTip)) };
}

const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

function fillerEntry(chainId: number, settler: Address, nonce: number) {
  return { chainId, settler, nonce, requestIds: [], asset: settler, payer: settler, payTo: settler, amount: '0', authorizationNonce: '0x' as Hex, validBefore: 0 };
}
