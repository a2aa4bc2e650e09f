import { describe, expect, it } from 'vitest';
import { decodeBase64Json } from '../../src/protocol/base64.js';
import { encodeReceiptHeader, receiptHeaderName } from '../../src/protocol/receipt.js';

const TX = `0x${'ab'.repeat(32)}`;

describe('receiptHeaderName', () => {
  it('answers in the version of the payment', () => {
    expect(receiptHeaderName(2)).toBe('PAYMENT-RESPONSE');
    expect(receiptHeaderName(1)).toBe('X-PAYMENT-RESPONSE');
  });
});

describe('encodeReceiptHeader', () => {
  it('encodes a success as standard base64 JSON', () => {
    const header = encodeReceiptHeader({ success: true, transaction: TX, network: 'eip155:8453', payer: '0x857b06519E91e3A54538791bDbb0E22373e36b66' });
    expect(header).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    expect(JSON.parse(Buffer.from(header, 'base64').toString('utf8'))).toEqual({
      success: true,
      payer: '0x857b06519E91e3A54538791bDbb0E22373e36b66',
      transaction: TX,
      network: 'eip155:8453',
    });
  });

  it('encodes a failure with its reason and no absent keys', () => {
    const decoded = decodeBase64Json(encodeReceiptHeader({ success: false, transaction: '', network: 'base', errorReason: 'insufficient_funds' }));
    expect(decoded).toEqual({ ok: true, value: { success: false, errorReason: 'insufficient_funds', transaction: '', network: 'base' } });
  });

  it('copies only the protocol fields', () => {
    const receipt = { success: true, transaction: TX, network: 'base', secret: 'do not leak' };
    const decoded = decodeBase64Json(encodeReceiptHeader(receipt));
    expect(decoded.ok && Object.keys(decoded.value)).toEqual(['success', 'transaction', 'network']);
  });

  it('encodes a deferred acceptance: success, no transaction yet, and where to ask, in extra, and nothing else of extra', () => {
    const extra = { settlement: 'deferred' as const, id: 'abc', status: 'https://gw.example/.well-known/x402/settlements/abc', secret: 'no' };
    const decoded = decodeBase64Json(encodeReceiptHeader({ success: true, transaction: '', network: 'eip155:8453', payer: '0x857b06519E91e3A54538791bDbb0E22373e36b66', extra }));
    expect(decoded).toEqual({
      ok: true,
      value: { success: true, payer: '0x857b06519E91e3A54538791bDbb0E22373e36b66', transaction: '', network: 'eip155:8453', extra: { settlement: 'deferred', id: 'abc', status: extra.status } },
    });
  });
});
