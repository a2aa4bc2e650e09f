/** The re-delivery judgement (redelivery.ts) over every receipt status a kept nonce can have. */
import { describe, expect, it } from 'vitest';
import { judgeRedelivery } from '../../src/payments/redelivery.js';
import type { Delivery, ReceiptStatus } from '../../src/payments/ports.js';

const terms = { resource: 'GET /v1/weather', signature: 'ab'.repeat(32) };
const delivery = (status: ReceiptStatus | undefined, overrides: Partial<Delivery> = {}): Delivery => ({
  ...terms,
  requestId: 'r1',
  ended: true,
  delivered: false,
  redeliveries: 0,
  status,
  transaction: '',
  payer: '0x2222222222222222222222222222222222222222',
  reason: '',
  ...overrides,
});

describe('judgeRedelivery', () => {
  it('serves a settled or queued (deferred, owed) payment whose request ended undelivered; waits while that request runs', () => {
    for (const status of ['settled', 'queued'] as const) {
      expect(judgeRedelivery(delivery(status), terms, 3)).toBe('serve');
      expect(judgeRedelivery(delivery(status, { ended: false }), terms, 3)).toBe('wait');
    }
    expect(judgeRedelivery(delivery('settled', { ended: false, reason: 'reconciled' }), terms, 3)).toBe('serve');
  });

  it('waits while a settlement is pending', () => {
    expect(judgeRedelivery(delivery('pending'), terms, 3)).toBe('wait');
  });

  it('refuses a replay: other terms, delivered, re-deliveries used up, nothing charged', () => {
    expect(judgeRedelivery(undefined, terms, 3)).toBe('refuse');
    expect(judgeRedelivery(delivery('settled', { resource: 'GET /other' }), terms, 3)).toBe('refuse');
    expect(judgeRedelivery(delivery('settled', { signature: 'cd'.repeat(32) }), terms, 3)).toBe('refuse');
    expect(judgeRedelivery(delivery('settled', { delivered: true }), terms, 3)).toBe('refuse');
    expect(judgeRedelivery(delivery('queued', { redeliveries: 3 }), terms, 3)).toBe('refuse');
    for (const status of ['settle_failed', 'refused', 'not_charged', undefined] as const) expect(judgeRedelivery(delivery(status), terms, 3)).toBe('refuse');
  });
});
