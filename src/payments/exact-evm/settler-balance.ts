/**
 * The gas balance of one settling account on one chain, read every BALANCE_REFRESH_MS: a settler
 * that runs out of gas stops every settlement of its key, so the operator sees the balance fall
 * (`x402_gateway_settler_balance_wei`) and is warned below `settle.minBalance` before it is gone.
 * One per (chain, key), kept across reloads like the reconciler; a reload may change the floor.
 */
import type { Address } from '../../config/types.js';
import type { ChainClient } from '../chain/client.js';
import { PeriodicTask } from '../periodic-task.js';

export const BALANCE_REFRESH_MS = 30_000;

export interface SettlerBalanceReading {
  readonly network: string;
  readonly address: Address;
  readonly wei: bigint;
  /** The floor in force, when the config names one. */
  readonly minBalanceWei: bigint | undefined;
  /** Below the floor. */
  readonly low: boolean;
}

export interface SettlerBalanceWatchOptions {
  readonly client: ChainClient;
  readonly network: string;
  readonly address: Address;
  readonly minBalanceWei: bigint | undefined;
  readonly intervalMs?: number;
  /** Each reading, and whether it crossed the floor since the last one (either way). */
  readonly onReading: (reading: SettlerBalanceReading, crossed: boolean) => void;
  /** The chain did not answer; the next refresh tries again. */
  readonly onError: (err: unknown) => void;
}

export class SettlerBalanceWatch {
  readonly #o: SettlerBalanceWatchOptions;
  #minBalanceWei: bigint | undefined;
  #latest: SettlerBalanceReading | undefined;
  readonly #task: PeriodicTask;

  constructor(options: SettlerBalanceWatchOptions) {
    this.#o = options;
    this.#minBalanceWei = options.minBalanceWei;
    this.#task = new PeriodicTask(() => this.#read(), options.intervalMs ?? BALANCE_REFRESH_MS, options.onError);
  }

  /** The last reading, if one has been made. */
  get latest(): SettlerBalanceReading | undefined {
    return this.#latest;
  }

  /** A reload's floor; it applies from the next reading. */
  set minBalanceWei(wei: bigint | undefined) {
    this.#minBalanceWei = wei;
  }

  /** A reading now, then one every interval. */
  start(): void {
    this.#task.start({ now: true });
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** Reads the balance once. Never rejects. */
  refresh(): Promise<void> {
    return this.#task.pass();
  }

  async #read(): Promise<void> {
    const wei = await this.#o.client.getBalance({ address: this.#o.address });
    const min = this.#minBalanceWei;
    const reading: SettlerBalanceReading = { network: this.#o.network, address: this.#o.address, wei, minBalanceWei: min, low: min !== undefined && wei < min };
    const crossed = (this.#latest?.low ?? false) !== reading.low;
    this.#latest = reading;
    this.#o.onReading(reading, crossed);
  }
}
