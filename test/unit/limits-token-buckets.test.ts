import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../../src/limits/token-buckets.js';

const LIMIT = { max: 3, perSeconds: 60 };

describe('TokenBuckets', () => {
  it('lets a new key go max times, then says how long to wait, and refills at max per perSeconds', () => {
    const buckets = new TokenBuckets();
    for (let i = 0; i < 3; i++) {
      expect(buckets.waitSeconds('a', LIMIT, 0)).toBe(0);
      buckets.take('a', LIMIT, 0);
    }
    expect(buckets.waitSeconds('a', LIMIT, 0)).toBe(20);
    expect(buckets.waitSeconds('a', LIMIT, 10_000)).toBe(10);
    expect(buckets.waitSeconds('a', LIMIT, 20_000)).toBe(0);
    expect(buckets.waitSeconds('b', LIMIT, 0)).toBe(0);
  });

  it('checking spends nothing, and a burst past the limit digs at most one token deep', () => {
    const buckets = new TokenBuckets();
    for (let i = 0; i < 10; i++) buckets.waitSeconds('a', LIMIT, 0);
    expect(buckets.waitSeconds('a', LIMIT, 0)).toBe(0);
    for (let i = 0; i < 10; i++) buckets.take('a', LIMIT, 0);
    expect(buckets.waitSeconds('a', LIMIT, 0)).toBe(40);
  });

  it('forgets the least recently seen keys past its size (they start full again)', () => {
    const buckets = new TokenBuckets(2);
    for (const key of ['a', 'b', 'c']) for (let i = 0; i < 3; i++) buckets.take(key, LIMIT, 0);
    expect(buckets.waitSeconds('a', LIMIT, 0)).toBe(0);
    expect(buckets.waitSeconds('c', LIMIT, 0)).toBe(20);
  });
});
