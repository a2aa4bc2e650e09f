/**
 * A `Ledger` wrapper that counts failed operations in the metrics and logs them, then rethrows:
 * a ledger fault still fails the request (503), it is just never silent.
 */
import type { Logger } from 'pino';
import type { GatewayMetrics } from '../metrics.js';
import type { Ledger } from '../payments/ports.js';
import { InfrastructureError } from '../errors.js';

type Operation = Exclude<keyof Ledger, 'close' | 'ping'>;

export function observeLedger(inner: Ledger, metrics: GatewayMetrics, logger: Logger): Ledger {
  const wrap =
    <A extends unknown[], R>(operation: Operation, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args);
      } catch (err) {
        metrics.ledgerErrors.inc({ operation });
        logger.error({ err, operation }, 'ledger operation failed');
        throw err instanceof InfrastructureError ? err : new InfrastructureError('GW_ERR_LEDGER_UNAVAILABLE', `ledger ${operation} failed`, { cause: err });
      }
    };
  return {
    reserveNonce: wrap('reserveNonce', (key, expiresAt) => inner.reserveNonce(key, expiresAt)),
    releaseNonce: wrap('releaseNonce', (key) => inner.releaseNonce(key)),
    beginSettlement: wrap('beginSettlement', (key, pending, terms) => inner.beginSettlement(key, pending, terms)),
    deliveryOf: wrap('deliveryOf', (key) => inner.deliveryOf(key)),
    claimRedelivery: wrap('claimRedelivery', (key, max) => inner.claimRedelivery(key, max)),
    answerEnded: wrap('answerEnded', (key, delivered) => inner.answerEnded(key, delivered)),
    claimProof: wrap('claimProof', (chainId, hash) => inner.claimProof(chainId, hash)),
    penalisePayer: wrap('penalisePayer', (chainId, payer, until) => inner.penalisePayer(chainId, payer, until)),
    payerPenalty: wrap('payerPenalty', (chainId, payer) => inner.payerPenalty(chainId, payer)),
    record: wrap('record', (receipt) => inner.record(receipt)),
    receipts: wrap('receipts', (query) => inner.receipts(query)),
    hourlyTotals: wrap('hourlyTotals', (sinceMs) => inner.hourlyTotals(sinceMs)),
    pendingReceipts: wrap('pendingReceipts', () => inner.pendingReceipts()),
    pendingRows: wrap('pendingRows', (network, olderThanMs, limit) => inner.pendingRows(network, olderThanMs, limit)),
    prune: wrap('prune', (olderThanMs, limit) => inner.prune(olderThanMs, limit)),
    takeNonce: wrap('takeNonce', (chainId, settler) => inner.takeNonce(chainId, settler)),
    raiseNonceFloor: wrap('raiseNonceFloor', (chainId, settler, next) => inner.raiseNonceFloor(chainId, settler, next)),
    returnNonce: wrap('returnNonce', (slot) => inner.returnNonce(slot)),
    logSettlement: wrap('logSettlement', (entry, tx) => inner.logSettlement(entry, tx)),
    logReplacement: wrap('logReplacement', (slot, tx) => inner.logReplacement(slot, tx)),
    voidSettlement: wrap('voidSettlement', (slot) => inner.voidSettlement(slot)),
    closeSettlement: wrap('closeSettlement', (slot, outcome) => inner.closeSettlement(slot, outcome)),
    openSettlements: wrap('openSettlements', (chainId, settler, limit) => inner.openSettlements(chainId, settler, limit)),
    holdLease: wrap('holdLease', (name, holder, ttlMs) => inner.holdLease(name, holder, ttlMs)),
    enqueueDeferred: wrap('enqueueDeferred', (key, receipt, item, caps, terms) => inner.enqueueDeferred(key, receipt, item, caps, terms)),
    queuedDeferred: wrap('queuedDeferred', (chainId, limit) => inner.queuedDeferred(chainId, limit)),
    logBatch: wrap('logBatch', (entry, tx, itemIds) => inner.logBatch(entry, tx, itemIds)),
    batchItems: wrap('batchItems', (slot) => inner.batchItems(slot)),
    finishDeferred: wrap('finishDeferred', (outcomes) => inner.finishDeferred(outcomes)),
    requeueBatch: wrap('requeueBatch', (slot) => inner.requeueBatch(slot)),
    deferredStatus: wrap('deferredStatus', (id) => inner.deferredStatus(id)),
    lastDeferredFailure: wrap('lastDeferredFailure', (chainId, payer) => inner.lastDeferredFailure(chainId, payer)),
    queueStats: wrap('queueStats', () => inner.queueStats()),
    // A failed probe is the probe's answer (readiness, the up gauge), not a failed operation.
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
}
