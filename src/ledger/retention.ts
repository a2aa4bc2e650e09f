/**
 * `ledger.retention`: rows of outcomes that moved no money (refusals, releases) and expired
 * reservations are deleted in the background, so a stream of junk can never fill the disk. Every
 * replica runs one; on a shared store they delete the same old rows, which is harmless.
 *
 * A pass deletes in batches of PRUNE_BATCH until a batch comes back short, so no one statement
 * holds the store for long, and runs at start and then every PRUNE_INTERVAL_MS.
 */
import type { Logger } from 'pino';
import { PeriodicTask } from '../payments/periodic-task.js';
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
  readonly #task: PeriodicTask;

  constructor(options: PrunerOptions) {
    this.#o = options;
    this.#task = new PeriodicTask(() => this.#pass(), options.intervalMs ?? PRUNE_INTERVAL_MS, (err) =>
      options.logger.warn({ err }, 'could not prune old ledger rows; trying again later'),
    );
  }

  /** One pass now, then one every interval (the timer does not keep the process alive). */
  start(): void {
    this.#task.start({ now: true });
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** One pass, unless one is running (then its promise). Never rejects: a failed pass is logged and tried again later. */
  pass(): Promise<void> {
    return this.#task.pass();
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
