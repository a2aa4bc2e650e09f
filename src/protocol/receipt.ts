/**
 * The settlement receipt header: base64 JSON `SettleResponse`, named after the request's protocol
 * version (`PAYMENT-RESPONSE` for v2, `X-PAYMENT-RESPONSE` for v1).
 */
import { encodeBase64Json } from './base64.js';
import type { SettlementReceipt, X402Version } from './types.js';

export type ReceiptHeaderName = 'PAYMENT-RESPONSE' | 'X-PAYMENT-RESPONSE';

/** The response header that carries the receipt for a payment of this protocol version. */
export function receiptHeaderName(version: X402Version): ReceiptHeaderName {
  switch (version) {
    case 1:
      return 'X-PAYMENT-RESPONSE';
    case 2:
      return 'PAYMENT-RESPONSE';
  }
}

/**
 * Encodes a receipt. Only the protocol's fields are copied, in its order, and absent optional
 * ones are left out (never `null`), so nothing else the caller's object carries leaks out.
 */
export function encodeReceiptHeader(receipt: SettlementReceipt): string {
  return encodeBase64Json({
    success: receipt.success,
    ...(receipt.errorReason === undefined ? {} : { errorReason: receipt.errorReason }),
    ...(receipt.payer === undefined ? {} : { payer: receipt.payer }),
    transaction: receipt.transaction,
    network: receipt.network,
    ...(receipt.extra === undefined ? {} : { extra: { settlement: receipt.extra.settlement, id: receipt.extra.id, status: receipt.extra.status } }),
  });
}
