/**
 * The one controllable `Clock` of the tests. A fixed clock stands still until a test moves it
 * (pure code: checkout, verify, caches); a real clock follows the real time from wherever it was
 * put, for code checked against things that stamp real time (anvil's blocks, the official
 * clients' `validBefore`), so a test can run it ahead on purpose.
 */
import type { Clock } from '../../src/payments/ports.js';

export class TestClock implements Clock {
  /** Fixed: the time in ms. Real: the offset in ms from `Date.now()`. */
  #ms: number;
  readonly #real: boolean;

  constructor(ms: number, real: boolean) {
    this.#ms = ms;
    this.#real = real;
  }

  nowMs(): number {
    return this.#real ? Date.now() + this.#ms : this.#ms;
  }

  nowSeconds(): bigint {
    return BigInt(Math.floor(this.nowMs() / 1000));
  }

  /** Moves the clock by `seconds` (negative moves it back). */
  advance(seconds: number | bigint): this {
    return this.advanceMs(Number(seconds) * 1000);
  }

  advanceMs(ms: number): this {
    this.#ms += ms;
    return this;
  }

  /** Puts the clock at unix second `seconds`; a real clock goes on ticking from there. */
  set(seconds: number | bigint): this {
    return this.setMs(Number(seconds) * 1000);
  }

  setMs(ms: number): this {
    this.#ms = this.#real ? ms - Date.now() : ms;
    return this;
  }
}

/** A clock standing still at unix second `seconds` until moved. */
export function fixedClock(seconds: number | bigint): TestClock {
  return new TestClock(Number(seconds) * 1000, false);
}

/** A clock standing still at `ms` (unix milliseconds) until moved. */
export function fixedClockMs(ms: number): TestClock {
  return new TestClock(ms, false);
}

/** The real time, `aheadSeconds` ahead of it (negative: behind), moved as a test needs. */
export function realClock(aheadSeconds = 0): TestClock {
  return new TestClock(aheadSeconds * 1000, true);
}
