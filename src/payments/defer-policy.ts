/**
 * A deferred route's terms, in the atomic units of the asset a payment is made in: what
 * `Checkout.defer` checks a payment against. Pure.
 */
import { DEFAULT_SETTLE_BATCH } from '../config/schema.js';
import type { DeferredTerms, PaymentOption } from '../config/types.js';
import { dollarsToAtomic } from '../pricing.js';
import type { DeferPolicy } from './checkout.js';

export function deferPolicy(terms: DeferredTerms, option: PaymentOption): DeferPolicy {
  const settle = option.asset.network.settle;
  const batch = (settle.mode === 'local' ? settle.batch : undefined) ?? DEFAULT_SETTLE_BATCH;
  return {
    caps: { perPayer: atomic(terms.maxUnsettledPerPayer, option.asset.decimals), total: atomic(terms.maxUnsettledTotal, option.asset.decimals) },
    penaltySeconds: terms.penaltySeconds,
    // The next flush, and the margin the batch needs to land.
    horizonSeconds: Math.ceil(batch.maxWaitMs / 1000) + batch.marginSeconds,
  };
}

/** The config checked these; a cap that does not convert defers nothing (0). */
function atomic(dollars: string, decimals: number): bigint {
  const amount = dollarsToAtomic(dollars, decimals);
  return amount.ok ? amount.amount : 0n;
}
