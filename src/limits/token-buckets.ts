/**
 * Token buckets keyed by a caller (a payer address, a client address), bounded in memory. Pure:
 * time is passed in. Each bucket holds up to `max` tokens and refills at `max` per `perSeconds`;
 * a key seen for the first time starts full.
 *
 * The store lives for the whole process and takes the limit at each call, so a config reload
 * changes the limit without forgetting what callers have spent. Limits are per replica: a caller
 * spread over N replicas gets N times the budget (see README).
 */
import { LRUCache } from 'lru-cache';

export interface RateLimit {
  /** Bucket size: how many may happen at once. */
  readonly max: number;
  /** The bucket refills `max` tokens over this many seconds. */
  readonly perSeconds: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Keys tracked at most; the least recently seen are forgotten first (they start full again). */
export const DEFAULT_TRACKED_KEYS = 100_000;

export class TokenBuckets {
  readonly #buckets: LRUCache<string, Bucket>;

  constructor(trackedKeys = DEFAULT_TRACKED_KEYS) {
    this.#buckets = new LRUCache({ max: trackedKeys });
  }

  /**
   * Seconds until `key` has a whole token again: 0 when it may go ahead now. Spends nothing, so a
   * check before the work and `take` after it can be apart (only an outcome spends a token).
   */
  waitSeconds(key: string, limit: RateLimit, nowMs: number): number {
    const tokens = this.#refilled(key, limit, nowMs);
    if (tokens >= 1) return 0;
    return Math.ceil(((1 - tokens) * limit.perSeconds) / limit.max);
  }

  /** Spends one token of `key` (down to at most one token of debt, so a burst cannot dig deeper). */
  take(key: string, limit: RateLimit, nowMs: number): void {
    const tokens = this.#refilled(key, limit, nowMs);
    this.#buckets.set(key, { tokens: Math.max(tokens - 1, -1), atMs: nowMs });
  }

  #refilled(key: string, limit: RateLimit, nowMs: number): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return limit.max;
    const elapsedSeconds = Math.max(nowMs - bucket.atMs, 0) / 1000;
    return Math.min(limit.max, bucket.tokens + (elapsedSeconds * limit.max) / limit.perSeconds);
  }
}
