import { describe, expect, it } from 'vitest';
import { FailedPaymentAttempts } from '../../src/limits/failed-attempts.js';

const LIMITS = { perClient: { max: 3, perSeconds: 30 }, perPayer: { max: 2, perSeconds: 20 } };
const PAYER = '0xAbCdEf0000000000000000000000000000000001';

describe('FailedPaymentAttempts', () => {
  it('holds a client once its failures use up its budget, and lets it go as the budget refills', () => {
    const f = new FailedPaymentAttempts();
    for (let i = 0; i < 3; i++) {
      expect(f.wait(LIMITS, '10.0.0.1', undefined, 0)).toBeUndefined();
      f.count(LIMITS, '10.0.0.1', undefined, 0);
    }
    expect(f.wait(LIMITS, '10.0.0.1', undefined, 0)).toEqual({ limit: 'client', seconds: 10 });
    // Another client is not held.
    expect(f.wait(LIMITS, '10.0.0.2', undefined, 0)).toBeUndefined();
    expect(f.wait(LIMITS, '10.0.0.1', undefined, 10_000)).toBeUndefined();
  });

  it('holds a payer only for refusals that proved it, whatever the case of its address, from every client', () => {
    const f = new FailedPaymentAttempts();
    // Refusals that did not prove the payer (a forger naming it) spend only the client's budget.
    for (let i = 0; i < 5; i++) f.count(LIMITS, `10.0.1.${i}`, undefined, 0);
    expect(f.wait(LIMITS, '10.0.9.9', PAYER, 0)).toBeUndefined();
    f.count(LIMITS, '10.0.2.1', PAYER, 0);
    f.count(LIMITS, '10.0.2.2', PAYER.toLowerCase(), 0);
    expect(f.wait(LIMITS, '10.0.9.9', PAYER.toUpperCase().replace('0X', '0x'), 0)).toEqual({ limit: 'payer', seconds: 10 });
  });
});
