/**
 * A measured window that anvil stalled, or whose payments failed, is re-run from the start (each
 * run starts a fresh chain), so the figures are always those of windows in which every payment
 * succeeded; the run gives up after `maxAttempts`.
 */

/** `run` until it returns; an error `retryable` accepts (it records the incident) is run again, up to `maxAttempts` runs in all. */
export async function retryWindow<T>(maxAttempts: number, run: () => Promise<T>, retryable: (err: unknown) => boolean): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= maxAttempts || !retryable(err)) throw err;
    }
  }
}
