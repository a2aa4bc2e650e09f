/**
 * Transaction nonces for one settling account on one chain, handed out locally.
 *
 * Concurrent settlements need consecutive nonces (two that read the node's pending count at
 * once would collide: "nonce too low"). viem's nonce manager reads `eth_getTransactionCount`
 * again for every settlement that does not overlap another, one RPC call (and a state lookup in
 * the node) per payment. This reads it once and counts from there. It re-reads when a settler
 * reports trouble (`reset`: a send the node refused for its nonce, or a transaction that may
 * never have arrived, which would leave a gap) and when its count is older than
 * NONCE_REFRESH_MS, so a transaction sent with the same key by anything else costs at most one
 * refused send (retried) rather than a stalled settler.
 *
 * Shared by every settler of one key on one chain (a reload may run two side by side).
 */

/** How long a count read from the node is trusted. */
export const NONCE_REFRESH_MS = 30_000;

export class NonceAllocator {
  readonly #nowMs: () => number;
  #base: { readonly at: number; readonly nonce: Promise<number> } | undefined;
  #issued = 0;

  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
  }

  /** The next nonce; `readPending` asks the node for the account's pending transaction count. */
  async take(readPending: () => Promise<number>): Promise<number> {
    const now = this.#nowMs();
    let base = this.#base;
    if (base === undefined || now - base.at >= NONCE_REFRESH_MS) {
      // A periodic refresh never goes below what was already handed out: a nonce taken but not
      // yet sent is not in the node's pending count. (After `reset`, there is no floor.)
      const issued = this.#issued;
      const floor = base === undefined ? undefined : base.nonce.then((n) => n + issued, () => 0);
      const read = readPending();
      const fresh = { at: now, nonce: floor === undefined ? read : Promise.all([read, floor]).then(([a, b]) => Math.max(a, b)) };
      base = fresh;
      this.#base = fresh;
      this.#issued = 0;
      // A failed read is not kept: the next take asks again.
      fresh.nonce.catch(() => {
        if (this.#base === fresh) this.#base = undefined;
      });
    }
    const offset = this.#issued++;
    return (await base.nonce) + offset;
  }

  /** Forgets the count: the next `take` reads the pending count from the node again. */
  reset(): void {
    this.#base = undefined;
  }
}
