/**
 * Counts settlements and releases under way, across config reloads, so a drain can wait for the
 * money to finish moving even when the caller has already hung up.
 */
export class WorkInFlight {
  #count = 0;

  get count(): number {
    return this.#count;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await work();
    } finally {
      this.#count--;
    }
  }
}
