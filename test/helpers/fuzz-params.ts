/**
 * fast-check parameters shared by the property tests in test/fuzz/: a fixed seed, so a default
 * run is the same run every time (fast-check prints the seed and the shrunk counterexample on
 * failure), and `FUZZ_RUNS`, a multiplier of every property's default number of cases for long
 * runs (`FUZZ_RUNS=50 npx vitest run test/fuzz`). `FUZZ_SEED` explores other cases.
 */
import type { Parameters } from 'fast-check';

/** The seed of a default run; any fixed number would do. */
export const DEFAULT_FUZZ_SEED = 402;

function positiveNumber(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${text}"`);
  return value;
}

/** `FUZZ_RUNS`, default 1. */
export const FUZZ_RUNS_FACTOR = positiveNumber('FUZZ_RUNS', 1);
export const FUZZ_SEED = Math.trunc(positiveNumber('FUZZ_SEED', DEFAULT_FUZZ_SEED));

/** `runs` cases (times FUZZ_RUNS) from the fixed seed. */
export function fuzzParams<T>(runs: number, extra: Parameters<T> = {}): Parameters<T> {
  return { numRuns: Math.max(1, Math.round(runs * FUZZ_RUNS_FACTOR)), seed: FUZZ_SEED, ...extra };
}

/** A vitest timeout that grows with FUZZ_RUNS, for properties whose cases take real time. */
export function fuzzTimeoutMs(baseMs: number): number {
  return Math.round(baseMs * Math.max(1, FUZZ_RUNS_FACTOR));
}
