/**
 * The settler's fee estimates, shared for FEE_CACHE_MS: concurrent settlements need not each ask
 * for the base fee and tip (two RPC calls), and a fee a second old still clears (maxFeePerGas
 * carries the estimator's headroom over the base fee). A failed estimate is not kept.
 */
import { Eip1559FeesNotSupportedError } from 'viem';
import type { ChainClient } from '../chain/client.js';
import type { Clock } from '../ports.js';

/** How long one fee estimate serves the settlements that follow it. */
export const FEE_CACHE_MS = 1_000;

/** What a settlement transaction pays per gas, in the chain's own fee model. */
export type Fees =
  | { readonly type: 'eip1559'; readonly maxFeePerGas: bigint; readonly maxPriorityFeePerGas: bigint }
  | { readonly type: 'legacy'; readonly gasPrice: bigint };

/** One settler's fee estimates on one chain, cached for FEE_CACHE_MS. */
export class FeeEstimate {
  readonly #client: ChainClient;
  readonly #clock: Clock;
  #cache: { readonly at: number; readonly fees: Promise<Fees> } | undefined;

  constructor(client: ChainClient, clock: Clock) {
    this.#client = client;
    this.#clock = clock;
  }

  /** The current estimate; throws what the chain throws. */
  fees(): Promise<Fees> {
    const now = this.#clock.nowMs();
    if (this.#cache && now - this.#cache.at < FEE_CACHE_MS) return this.#cache.fees;
    const fees = this.#estimate();
    this.#cache = { at: now, fees };
    fees.catch(() => {
      if (this.#cache?.fees === fees) this.#cache = undefined;
    });
    return fees;
  }

  /** EIP-1559 fees when the chain has them (every chain x402 pays on today), else a gas price. */
  async #estimate(): Promise<Fees> {
    try {
      const fees = await this.#client.estimateFeesPerGas({ type: 'eip1559' });
      return { type: 'eip1559', maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
    } catch (err) {
      if (err instanceof Eip1559FeesNotSupportedError) return { type: 'legacy', gasPrice: await this.#client.getGasPrice() };
      throw err;
    }
  }
}

/** Fees as the log keeps them; a legacy gas price is both the cap and the tip. */
export function loggedFees(fees: Fees): { maxFeePerGas: string; maxPriorityFeePerGas: string } {
  return fees.type === 'eip1559'
    ? { maxFeePerGas: fees.maxFeePerGas.toString(), maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString() }
    : { maxFeePerGas: fees.gasPrice.toString(), maxPriorityFeePerGas: fees.gasPrice.toString() };
}
