import { describe, expect, it } from 'vitest';
import { atomicToDecimal, dollarsToAtomic, parseAtomic } from '../../src/pricing.js';

describe('dollarsToAtomic', () => {
  it.each([
    ['$0.01', 6, 10_000n],
    ['$1', 6, 1_000_000n],
    ['$1.5', 6, 1_500_000n],
    ['$0.000001', 6, 1n],
    ['$0.0079', 6, 7_900n], // a float would give 7900.000000000001
    ['$0.0157', 6, 15_700n], // and 15699.999999999998
    ['$0.10000000', 6, 100_000n], // trailing zeros beyond the decimals are exact
    ['$123456789.123456', 6, 123_456_789_123_456n],
    ['$0.01', 18, 10_000_000_000_000_000n],
  ])('%s at %i decimals is %s', (price, decimals, amount) => {
    expect(dollarsToAtomic(price, decimals)).toEqual({ ok: true, amount });
  });

  it.each(['$0.0000001', '$0.0000015'])('refuses %s: below the smallest unit, never truncated', (price) => {
    const r = dollarsToAtomic(price, 6);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problem).toContain("below the asset's smallest unit");
  });

  it.each(['0.01', '$', '$.5', '$-1', '$+1', '$1e3', '$ 1', '$1,000', '$01', '$0x10', '$1.', ''])('refuses %j', (price) => {
    expect(dollarsToAtomic(price, 6).ok).toBe(false);
  });

  it('refuses a zero price: free routes say price: free', () => {
    expect(dollarsToAtomic('$0.00', 6).ok).toBe(false);
  });
});

describe('parseAtomic', () => {
  it('parses canonical integers', () => {
    expect(parseAtomic('250000')).toEqual({ ok: true, amount: 250_000n });
  });
  it.each(['', ' 1', '+1', '0x10', '010', '1e6', '1.0', '-1', '0', (2n ** 256n).toString()])('refuses %j', (text) => {
    expect(parseAtomic(text).ok).toBe(false);
  });
});

describe('atomicToDecimal', () => {
  it.each([
    [10_000n, 6, '0.01'],
    [1n, 6, '0.000001'],
    [1_000_000n, 6, '1'],
    [1_234_500n, 6, '1.2345'],
    [5n, 0, '5'],
  ])('%s at %i decimals is %s', (amount, decimals, text) => {
    expect(atomicToDecimal(amount, decimals)).toBe(text);
  });
});
