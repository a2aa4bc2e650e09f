/**
 * Transaction nonces of one settling account on one chain, allocated through the shared store
 * (`SettlementLog.takeNonce`), so any number of replicas settle with one key and never take the
 * same nonce. The chain's pending count is read only when the store has no count yet, and after
 * a send the node refused for its nonce (the key was used by something else): it raises the
 * store's count, never lowers it.
 */
import type { Address } from '../../config/types.js';
import type { SettlementLog } from '../ports.js';

export class StoreNonces {
  constructor(
    private readonly log: SettlementLog,
    private readonly chainId: number,
    private readonly settler: Address,
    /** The account's pending transaction count on the chain. */
    private readonly readPending: () => Promise<number>,
  ) {}

  async take(): Promise<number> {
    const nonce = await this.log.takeNonce(this.chainId, this.settler);
    if (nonce !== undefined) return nonce;
    await this.resync();
    const seeded = await this.log.takeNonce(this.chainId, this.settler);
    if (seeded === undefined) throw new Error(`the store kept no nonce count for ${this.settler} on chain ${this.chainId}`);
    return seeded;
  }

  /** Raises the store's count to the chain's pending count, when the chain has seen more. */
  async resync(): Promise<void> {
    await this.log.raiseNonceFloor(this.chainId, this.settler, await this.readPending());
  }

  /**
   * A taken nonce whose transaction was never sent. Logged, its entry is marked void (the slot
   * keeps its one entry), and the reconciler fills the nonce if the chain stalls on it; not
   * logged, it is handed back when no later one was taken since, else it is a gap the
   * reconciler finds the same way.
   */
  async unused(nonce: number, logged: boolean): Promise<void> {
    const slot = { chainId: this.chainId, settler: this.settler, nonce };
    if (logged) await this.log.voidSettlement(slot);
    else await this.log.returnNonce(slot);
  }
}
