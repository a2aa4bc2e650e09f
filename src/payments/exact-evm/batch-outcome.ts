/**
 * A batch in the settlement log, and what its mined receipt means for its items: shared by the
 * batcher, which usually sees the receipt, and the reconciler, which finishes a batch whose
 * receipt the batcher did not see (its wait timed out, its replica died).
 */
import { isAddressEqual, type TransactionReceipt } from 'viem';
import type { Address } from '../../config/types.js';
import type { DeferredItem, DeferredOutcome, OpenSettlement, SettlementEntry, SettlementQueue, SettlementSlot } from '../ports.js';
import { batchOutcomes } from './batch-calls.js';

/** Why a deferred item failed: its receipt row's reason, and the status endpoint's. */
export const DEFERRED_REASON = {
  expired: 'authorization_expired_before_batch',
  simulation: 'authorization_failed_before_batch',
  inBatch: 'authorization_failed_in_batch',
} as const;

/**
 * The settlement log entry of a batch: it names the batch, not a payment: the settler as payer,
 * Multicall3 as asset and payee, the items' total, the earliest expiry.
 */
export function batchEntry(chainId: number, settler: Address, nonce: number, multicall3: Address, items: readonly DeferredItem[]): SettlementEntry {
  const total = items.reduce((sum, item) => sum + item.authorization.value, 0n);
  const validBefore = items.reduce((earliest, item) => (item.authorization.validBefore < earliest ? item.authorization.validBefore : earliest), BigInt(Number.MAX_SAFE_INTEGER));
  return {
    chainId,
    settler,
    nonce,
    requestIds: items.map((item) => item.requestId),
    asset: multicall3,
    payer: settler,
    payTo: multicall3,
    amount: total.toString(),
    authorizationNonce: `0x${'00'.repeat(32)}`,
    validBefore: Number(validBefore),
  };
}

/** Is this logged entry a batch's (the settler pays for rows), not one payment's or a filler's? */
export function isBatchEntry(entry: Pick<OpenSettlement, 'payer' | 'settler' | 'requestIds'>): boolean {
  return entry.requestIds.length > 0 && isAddressEqual(entry.payer, entry.settler);
}

/**
 * Records a mined batch: each item settled or failed by the receipt's events; an item whose
 * authorization was used without its transfer stays `batched` for a person (never "not paid").
 * A reverted batch moved nothing: its items go back in the queue. Resolves with the outcomes.
 */
export async function finishBatch(
  queue: SettlementQueue,
  slot: SettlementSlot,
  items: readonly DeferredItem[],
  receipt: TransactionReceipt,
  onItem?: (item: DeferredItem, outcome: DeferredOutcome) => void,
): Promise<readonly DeferredOutcome[]> {
  if (receipt.status !== 'success') {
    await queue.requeueBatch(slot);
    return [];
  }
  const byId = batchOutcomes(items, receipt.logs);
  const outcomes: DeferredOutcome[] = [];
  for (const item of items) {
    const outcome = byId.get(item.id);
    if (outcome === 'settled') outcomes.push({ id: item.id, state: 'settled', transaction: receipt.transactionHash, reason: '' });
    else if (outcome === 'failed') outcomes.push({ id: item.id, state: 'failed', transaction: receipt.transactionHash, reason: DEFERRED_REASON.inBatch });
  }
  // Only the items this write finished are reported: another replica may have finished the rest.
  const written = new Set(await queue.finishDeferred(outcomes));
  for (const item of items) {
    const outcome = outcomes.find((o) => o.id === item.id);
    if (outcome !== undefined && written.has(item.requestId)) onItem?.(item, outcome);
  }
  return outcomes;
}

