/**
 * Whether a settlement's nonce has been mined yet, from one shared read of the settling account's
 * mined transaction count (`eth_getTransactionCount(latest)`).
 *
 * A key's transactions are mined in nonce order, so that one number answers every waiting
 * settlement of the key at once. Without it, each settlement polls for its own receipt: when a
 * chain mines one settlement at a time (anvil) and 32 wait, each was polled five to seven times
 * before its receipt existed. With it, a settlement asks for its receipt only once its nonce is
 * mined; the count is read at most once per `maxAgeMs` (concurrent askers share the read).
 *
 * It only gates the receipt poll: when it cannot tell (the read failed), it says "ask".
 */
export class MinedNonceGate {
  readonly #nowMs: () => number;
  readonly #maxAgeMs: number;
  #latest: { readonly at: number; readonly count: Promise<number> } | undefined;

  constructor(nowMs: () => number, maxAgeMs: number) {
    this.#nowMs = nowMs;
    this.#maxAgeMs = maxAgeMs;
  }

  /** False only when the count read says `nonce` is not mined yet. */
  async mayBeMined(nonce: number, readMinedCount: () => Promise<number>): Promise<boolean> {
    const now = this.#nowMs();
    let latest = this.#latest;
    if (latest === undefined || now - latest.at >= this.#maxAgeMs) {
      latest = { at: now, count: readMinedCount() };
      this.#latest = latest;
    }
    try {
      return (await latest.count) > nonce;
    } catch {
      return true;
    }
  }
}
