/** A kept nonce's delivery row as both stores read it (joined with its receipt row), and back. */
import type { Delivery, ReceiptStatus } from '../payments/ports.js';

export interface DeliveryRow {
  resource: string;
  signature: string;
  request_id: string;
  ended: number | boolean;
  delivered: number | boolean;
  redeliveries: number | string;
  status: string | null;
  tx_hash: string | null;
  payer: string | null;
  reason: string | null;
}

export function deliveryFromRow(row: DeliveryRow): Delivery {
  return {
    resource: row.resource,
    signature: row.signature,
    requestId: row.request_id,
    ended: row.ended === true || row.ended === 1,
    delivered: row.delivered === true || row.delivered === 1,
    redeliveries: Number(row.redeliveries),
    status: (row.status ?? undefined) as ReceiptStatus | undefined,
    transaction: row.tx_hash ?? '',
    payer: row.payer ?? '',
    reason: row.reason ?? '',
  };
}
