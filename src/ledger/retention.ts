/**
 * `ledger.retention`: rows of outcomes that moved no money (refusals, releases) and expired
 * reservations are deleted in the background, so a stream of junk can never fill the disk. Every
 * replica runs one; on a shared store they delete the same old rows, which is harmless.
 *
 * A pass deletes in batches of PRUNE_BATCH until a batch comes back short, so no one statement
 * holds the store for long, and runs at start and then every PRUNE_INTERVAL_MS.
 */
import type { Logger } from 'pino';
import type { Clock, Ledger } from '../payments/ports.js';

export const PRUNE_INTERVAL_MS = 10 * 60_000;
export const PRUNE_BATCH = 5_000;

export interface PrunerOptions {
  readonly ledger: Pick<Ledger, 'prune'>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Read at every pass, so a reload's new retention applies. */
  readonly retentionMs: () => number;
  /** Rows deleted by a pass. */
  readonly onPruned?: (rows: number) => void;
  readonly intervalMs?: number;
}

export class LedgerPruner {
  readonly #o: PrunerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: PrunerOptions) {
    this.#o = options;
  }

  /** One pass now, then one every interval (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    void this.pass();
    this.#timer = setInterval(() => void this.pass(), this.#o.intervalMs ?? PRUNE_INTERVAL_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass, unless one is running (then its promise). Never rejects: a failed pass is logged and tried again later. */
  pass(): Promise<void> {
    this.#running ??= this.#pass()
      .catch((err: unknown) => this.#o.logger.warn({ err }, 'could not prune old ledger rows; trying again later'))
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  async #pass(): Promise<void> {
    const before = this.#o.clock.nowMs() - this.#o.retentionMs();
    let total = 0;
    for (;;) {
      const deleted = await this.#o.ledger.prune(before, PRUNE_BATCH);
      total += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    if (total > 0) {
      this.#o.onPruned?.(total);
      this.#o.logger.info({ rows: total }, 'pruned ledger rows past their retention');
    }
  }
}
