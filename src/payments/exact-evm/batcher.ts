/**
 * The settlement batcher of one settling account on one chain (`settlement: deferred`). Every
 * replica runs one; the store's lease lets one at a time work, so each queued authorization goes
 * into exactly one batch, and a replica that dies loses the lease within LEASE_TTL_MS.
 *
 * A pass flushes when `maxSize` items are queued or the oldest has waited `maxWaitMs`:
 *
 *   1. items whose authorization expires before a batch could land are failed (served, never
 *      paid: the enqueue side keeps this rare by settling such payments at once);
 *   2. `eth_call` of the whole batch: an item whose call would fail now (its payer moved the
 *      funds, its nonce was spent elsewhere) is failed without paying gas for it;
 *   3. the rest, as many as fit under `maxGas` by the estimate, are signed into one `aggregate3`
 *      transaction, logged with the settlement log before the broadcast (`logBatch`: the items
 *      become `batched` on the slot in the same write), sent, and waited for (bounded);
 *   4. the receipt's events decide each item (batch-calls.ts). No receipt in time: the
 *      reconciler owns the slot from there (it re-sends, bumps the fee, and finishes the items
 *      with `finishBatch` once the slot is mined, or queues them again if it never is).
 *
 * A batch entry in the settlement log names the batch, not a payment (batch-outcome.ts).
 */
import { keccak256, type Chain, type Transport, type WalletClient } from 'viem';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import { describeFault } from '../chain/describe-fault.js';
import { neverReachedNode, sendRejected } from '../chain/rpc-errors.js';
import { PeriodicTask } from '../periodic-task.js';
import type { Clock, DeferredItem, DeferredOutcome, SettlementLog, SettlementQueue } from '../ports.js';
import { batchCalldata, planBatches, simulatedSuccesses } from './batch-calls.js';
import { batchEntry, DEFERRED_REASON, finishBatch } from './batch-outcome.js';
import { loggedFees, type FeeEstimate } from './fee-estimate.js';
import type { ReceiptWait } from './receipt-wait.js';
import { LEASE_TTL_MS } from './reconciler.js';
import type { StoreNonces } from './store-nonces.js';
import type { TransactionSigner } from './transaction-signer.js';

/** A batch's gas beyond its items' (the transaction, Multicall3's loop), for planning. */
const BATCH_BASE_GAS = 30_000n;
/** The estimate plus this, per mille: a batch's items touch storage other batches warmed. */
const GAS_HEADROOM_PER_MILLE = 200n;
/** How often a batcher looks at the queue, at most. */
const MAX_POLL_MS = 250;

/** What a finished batch did, for the metrics. */
export interface BatchReport {
  readonly size: number;
  readonly settled: number;
  readonly failed: number;
  readonly gasUsed: bigint;
  readonly transaction: Hex;
}

/** When a batch flushes and how large it may be: `settle.batch`, which a reload may change. */
export interface BatchTerms {
  readonly maxSize: number;
  readonly maxWaitMs: number;
  /** Gas limit of one batch transaction. */
  readonly maxGas: bigint;
  /** An authorization must stay valid this long past a flush to go into its batch. */
  readonly marginSeconds: number;
}

export interface BatcherOptions extends BatchTerms {
  readonly queue: SettlementQueue & Pick<SettlementLog, 'holdLease' | 'closeSettlement'>;
  readonly client: ChainClient;
  readonly signer: TransactionSigner;
  readonly nonces: StoreNonces;
  readonly fees: FeeEstimate;
  readonly receipts: ReceiptWait;
  readonly wallet: WalletClient<Transport, Chain>;
  readonly clock: Clock;
  readonly multicall3: Address;
  /** This replica, as the lease names its holder. */
  readonly holder: string;
  /** Each item settled or failed (served, not paid: bad debt), once, by whichever path finished it. */
  readonly onItem?: (item: DeferredItem, outcome: DeferredOutcome) => void;
  readonly onBatch?: (report: BatchReport) => void;
  readonly onError?: (err: unknown) => void;
}

export class SettlementBatcher {
  readonly #o: BatcherOptions;
  readonly #chainId: number;
  readonly #task: PeriodicTask;
  readonly #lease: string;
  #terms: BatchTerms;

  constructor(options: BatcherOptions) {
    this.#o = options;
    this.#terms = options;
    this.#chainId = options.client.chain.id;
    this.#lease = `batch:${this.#chainId}:${options.signer.address.toLowerCase()}`;
    this.#task = new PeriodicTask(() => this.#pass(false), Math.min(MAX_POLL_MS, options.maxWaitMs), (err) => options.onError?.(err));
  }

  start(): void {
    this.#task.start();
  }

  /**
   * The terms of a reloaded config, from the next pass on. The queue is looked at as often as
   * the first terms said (every MAX_POLL_MS at most), so a shorter wait is kept to within that:
   * far inside the margin an authorization must outlive its flush by.
   */
  retune(terms: BatchTerms): void {
    this.#terms = terms;
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** One pass now (flushing only what is due), unless one is running. Never rejects. */
  tick(): Promise<void> {
    return this.#task.pass();
  }

  /**
   * Settles everything queued, due or not, until the queue is empty or `deadlineMs` (unix ms)
   * passes: the drain on SIGTERM. Resolves with how many items are left queued.
   */
  async flush(deadlineMs: number): Promise<number> {
    await this.#task.stop();
    for (;;) {
      try {
        await this.#pass(true);
      } catch (err) {
        this.#o.onError?.(err);
      }
      const left = await this.#o.queue.queuedDeferred(this.#chainId, 1);
      if (left.length === 0 || this.#o.clock.nowMs() >= deadlineMs) return left.length;
      await new Promise((resolve) => setTimeout(resolve, MAX_POLL_MS));
    }
  }

  async #pass(all: boolean): Promise<void> {
    // An empty queue costs one read, and no lease write, per pass.
    if ((await this.#o.queue.queuedDeferred(this.#chainId, 1)).length === 0) return;
    for (;;) {
      // Renewed before each batch: a pass of several batches may outlast one lease.
      if (!(await this.#o.queue.holdLease(this.#lease, this.#o.holder, LEASE_TTL_MS))) return;
      const queued = await this.#o.queue.queuedDeferred(this.#chainId, this.#terms.maxSize);
      const oldest = queued[0];
      if (oldest === undefined) return;
      const due = queued.length >= this.#terms.maxSize || this.#o.clock.nowMs() - oldest.queuedAtMs >= this.#terms.maxWaitMs;
      if (!all && !due) return;
      await this.#settle(queued);
      if (queued.length < this.#terms.maxSize) return;
    }
  }

  /** Steps 1 to 4 of the file comment for `queued` (oldest first, at most `maxSize`). */
  async #settle(queued: readonly DeferredItem[]): Promise<void> {
    const now = this.#o.clock.nowSeconds();
    const expired = queued.filter((item) => item.authorization.validBefore <= now + BigInt(this.#terms.marginSeconds));
    await this.#fail(expired, DEFERRED_REASON.expired);
    let items = queued.filter((item) => !expired.includes(item));
    if (items.length === 0) return;

    const from = this.#o.signer.address;
    const simulated = await this.#o.client.call({ account: from, to: this.#o.multicall3, data: batchCalldata(items) });
    const successes = simulatedSuccesses(simulated.data ?? '0x');
    await this.#fail(
      items.filter((_, i) => successes[i] !== true),
      DEFERRED_REASON.simulation,
    );
    items = items.filter((_, i) => successes[i] === true);
    if (items.length === 0) return;

    const estimate = await this.#o.client.estimateGas({ account: from, to: this.#o.multicall3, data: batchCalldata(items) });
    const gasPerItem = (estimate - BATCH_BASE_GAS > 0n ? estimate - BATCH_BASE_GAS : estimate) / BigInt(items.length);
    const [batch] = planBatches(items, { maxSize: this.#terms.maxSize, maxGas: this.#terms.maxGas, baseGas: BATCH_BASE_GAS, gasPerItem });
    if (batch === undefined) return;
    const gasEstimate = batch.length === items.length ? estimate : BATCH_BASE_GAS + gasPerItem * BigInt(batch.length);
    const gas = min(this.#terms.maxGas, gasEstimate + (gasEstimate * GAS_HEADROOM_PER_MILLE) / 1000n);
    await this.#send(batch, gas);
  }

  async #send(batch: readonly DeferredItem[], gas: bigint): Promise<void> {
    const fees = await this.#o.fees.fees();
    const nonce = await this.#o.nonces.take();
    const raw = await this.#o.signer.sign({ chainId: this.#chainId, to: this.#o.multicall3, data: batchCalldata(batch), gas, nonce, ...fees });
    const hash = keccak256(raw);
    const entry = batchEntry(this.#chainId, this.#o.signer.address, nonce, this.#o.multicall3, batch);
    let logged: boolean;
    try {
      // Write-ahead: nothing is broadcast that the store does not know about.
      logged = await this.#o.queue.logBatch(entry, { hash, raw, ...loggedFees(fees) }, batch.map((item) => item.id));
    } catch (err) {
      await this.#o.nonces.unused(nonce, false).catch(() => undefined);
      throw err;
    }
    if (!logged) {
      // Another batcher took some of these (its lease ran out under a long receipt wait, and this
      // one's began): send nothing; the items it left are still queued for the next pass.
      await this.#o.nonces.unused(nonce, false);
      return;
    }
    try {
      await this.#o.wallet.sendRawTransaction({ serializedTransaction: raw });
    } catch (err) {
      if (neverReachedNode(err) || sendRejected(err)) {
        // Provably never in the mempool: the slot is void (the reconciler fills it) and the items go back.
        await this.#o.nonces.unused(nonce, true);
        await this.#o.queue.requeueBatch(entry);
        throw new Error(`batch of ${batch.length} not sent: ${describeFault(err)}`, { cause: err });
      }
      // Unclear: the node may have it. The receipt wait below, or the reconciler, finds out.
    }
    const awaited = await this.#o.receipts.receipt(hash, raw, nonce);
    if (!('receipt' in awaited)) return;
    const outcomes = await finishBatch(this.#o.queue, entry, batch, awaited.receipt, this.#o.onItem);
    await this.#o.queue.closeSettlement(entry);
    this.#o.onBatch?.({
      size: batch.length,
      settled: outcomes.filter((o) => o.state === 'settled').length,
      failed: outcomes.filter((o) => o.state === 'failed').length,
      gasUsed: awaited.receipt.gasUsed,
      transaction: awaited.receipt.transactionHash,
    });
  }

  async #fail(items: readonly DeferredItem[], reason: string): Promise<void> {
    if (items.length === 0) return;
    const outcomes = items.map((item): DeferredOutcome => ({ id: item.id, state: 'failed', transaction: '', reason }));
    const written = new Set(await this.#o.queue.finishDeferred(outcomes));
    items.forEach((item, i) => {
      if (written.has(item.requestId)) this.#o.onItem?.(item, outcomes[i]!);
    });
  }
}

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
