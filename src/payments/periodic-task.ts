/**
 * Background work done in passes, one every interval and never two at once: the settlement
 * reconciler, the ledger pruner and the settler balance watch. The timer does not keep the process
 * alive; a pass that fails is handed to `onError`, and the next one tries again.
 */
export class PeriodicTask {
  readonly #run: () => Promise<void>;
  readonly #intervalMs: number;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(run: () => Promise<void>, intervalMs: number, onError: (err: unknown) => void) {
    this.#run = run;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  /** A pass every interval; with `now`, the first one at once. Starting twice changes nothing. */
  start(options: { readonly now?: boolean } = {}): void {
    if (this.#timer) return;
    if (options.now === true) void this.pass();
    this.#timer = setInterval(() => void this.pass(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One pass, unless one is running (then its promise). Never rejects. */
  pass(): Promise<void> {
    this.#running ??= this.#run()
      .catch((err: unknown) => {
        this.#onError(err);
      })
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
