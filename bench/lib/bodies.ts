/** The two answers the upstream serves (and the official server serves itself). */

/** About 100 bytes: what a small JSON API answers. */
export const SMALL_BODY = Buffer.from(
  JSON.stringify({ city: 'Lisbon', temperatureC: 21.5, conditions: 'clear', updated: '2025-01-01T00:00:00Z' }),
);

/** 64 KiB: a larger answer, where copying bytes starts to matter more than per-request work. */
export const BIG_BODY = Buffer.alloc(64 * 1024, 'x');
