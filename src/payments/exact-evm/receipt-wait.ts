/**
 * The settler's bounded wait for its transaction's receipt (step 4 in settle.ts), with the
 * rebroadcast of a transaction the node dropped.
 *
 * The receipt is asked for at once (a chain that mines on arrival often has it already), then
 * after FIRST_RECEIPT_POLL_MS, doubling up to the client's polling interval, each time only if
 * the shared mined count (mined-nonce-gate.ts) says its nonce may be mined. A failed poll is not
 * the end: the money may move regardless, so polling goes on until the deadline.
 *
 * Nodes drop transactions from their pool (seen on anvil, and on real nodes under pressure); a
 * dropped settlement would never be mined and its nonce would stall every later settlement of
 * the key. So each time a slice of the wait passes without a receipt and the node no longer
 * knows the transaction, the same signed bytes are sent again: the same hash and nonce, so it
 * can be mined at most once.
 */
import { TransactionReceiptNotFoundError, type TransactionReceipt } from 'viem';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import type { Clock } from '../ports.js';
import { MinedNonceGate } from './mined-nonce-gate.js';

/** How long to wait for a receipt before checking that the node still has the transaction. */
export const DEFAULT_REBROADCAST_AFTER_MS = 5_000;
/**
 * The first wait between receipt polls; each next one doubles, up to the client's polling
 * interval. A chain that mines on arrival (anvil, some L2 sequencers) usually has the receipt a
 * few milliseconds after the send: waiting a whole interval (100 ms) first was most of a
 * settlement's latency there, while a chain with seconds-long blocks costs only a few extra polls.
 */
export const FIRST_RECEIPT_POLL_MS = 4;

export interface ReceiptWaitOptions {
  /** Receipts, transactions and the mined count are read here, polled at its interval. */
  readonly client: ChainClient;
  /** The settling account, whose mined count gates the polls. */
  readonly address: Address;
  /** Sends signed bytes again; its failure is ignored (the next slice looks again). */
  readonly resend: (serialized: Hex) => Promise<unknown>;
  readonly clock: Clock;
  readonly timeoutMs: number;
  /** DEFAULT_REBROADCAST_AFTER_MS by default. */
  readonly rebroadcastAfterMs?: number;
}

/** A receipt, or the last poll's error (undefined when the node simply had none yet). */
export type ReceiptWaitResult = { readonly receipt: TransactionReceipt } | { readonly lastError: unknown };

/** Waits for the receipts of one settler's transactions; one per settler, shared by its settlements. */
export class ReceiptWait {
  readonly #client: ChainClient;
  readonly #address: Address;
  readonly #resend: (serialized: Hex) => Promise<unknown>;
  readonly #clock: Clock;
  readonly #mined: MinedNonceGate;
  readonly #timeoutMs: number;
  readonly #rebroadcastAfterMs: number;

  constructor(options: ReceiptWaitOptions) {
    this.#client = options.client;
    this.#address = options.address;
    this.#resend = options.resend;
    this.#clock = options.clock;
    this.#mined = new MinedNonceGate(() => options.clock.nowMs(), FIRST_RECEIPT_POLL_MS);
    this.#timeoutMs = options.timeoutMs;
    this.#rebroadcastAfterMs = options.rebroadcastAfterMs ?? DEFAULT_REBROADCAST_AFTER_MS;
  }

  /** How long `receipt` waits in all. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** The receipt of `hash` (the signed bytes `serialized`, sent with `nonce`), within the timeout. */
  async receipt(hash: Hex, serialized: Hex, nonce: number): Promise<ReceiptWaitResult> {
    const start = this.#clock.nowMs();
    const deadline = start + this.#timeoutMs;
    let nextRebroadcast = start + this.#rebroadcastAfterMs;
    let lastError: unknown;
    let wait = FIRST_RECEIPT_POLL_MS;
    const address = this.#address;
    const readMinedCount = () => this.#client.getTransactionCount({ address, blockTag: 'latest' });
    for (let poll = 0; ; poll++) {
      if (poll === 0 || (await this.#mined.mayBeMined(nonce, readMinedCount))) {
        try {
          return { receipt: await this.#client.getTransactionReceipt({ hash }) };
        } catch (err) {
          lastError = err instanceof TransactionReceiptNotFoundError ? undefined : err;
        }
      }
      const now = this.#clock.nowMs();
      if (now >= deadline) return { lastError };
      if (now >= nextRebroadcast) {
        nextRebroadcast = now + this.#rebroadcastAfterMs;
        const known = await this.#client.getTransaction({ hash }).then(
          () => true,
          () => false,
        );
        if (!known) await this.#resend(serialized).catch(() => undefined);
      }
      await sleep(Math.min(wait, deadline - now));
      wait = Math.min(wait * 2, this.#client.pollingInterval);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
