/**
 * The settlement queue's rows as both stores keep them, and back: one encoding, so SQLite and
 * PostgreSQL answer alike. Addresses lower-case; amounts and the authorization's times as decimal
 * strings or integers the stores hand back as strings or numbers. Exposure totals are exact:
 * decimal text added as bigint (SQLite) or NUMERIC (PostgreSQL), never a float.
 */
import type { DeferredItem, DeferredState, DeferredStatus } from '../payments/ports.js';
import type { Address, Hex } from '../protocol/types.js';

/** The payer column's value in the exposure row that holds an asset's total. */
export const TOTAL_EXPOSURE = '*';

export interface DeferredRow {
  id: string;
  request_id: string;
  route: string;
  chain_id: number | string;
  asset: string;
  payer: string;
  pay_to: string;
  amount: string;
  valid_after: string;
  valid_before: string;
  authorization_nonce: string;
  signature: string;
  state: DeferredState;
  tx_hash: string;
  reason: string;
  queued_at: number | string;
}

export function deferredRow(item: DeferredItem): Omit<DeferredRow, 'state' | 'tx_hash' | 'reason'> {
  const auth = item.authorization;
  return {
    id: item.id,
    request_id: item.requestId,
    route: item.route,
    chain_id: item.chainId,
    asset: item.asset.toLowerCase(),
    payer: auth.from.toLowerCase(),
    pay_to: auth.to.toLowerCase(),
    amount: auth.value.toString(),
    valid_after: auth.validAfter.toString(),
    valid_before: auth.validBefore.toString(),
    authorization_nonce: auth.nonce.toLowerCase(),
    signature: item.signature,
    queued_at: item.queuedAtMs,
  };
}

export function deferredItemFromRow(row: DeferredRow): DeferredItem {
  return {
    id: row.id,
    requestId: row.request_id,
    route: row.route,
    chainId: Number(row.chain_id),
    asset: row.asset as Address,
    authorization: {
      from: row.payer as Address,
      to: row.pay_to as Address,
      value: BigInt(row.amount),
      validAfter: BigInt(row.valid_after),
      validBefore: BigInt(row.valid_before),
      nonce: row.authorization_nonce as Hex,
    },
    signature: row.signature as Hex,
    queuedAtMs: Number(row.queued_at),
  };
}

export function deferredStatusFromRow(row: DeferredRow): DeferredStatus {
  return {
    id: row.id,
    requestId: row.request_id,
    state: row.state,
    transaction: row.tx_hash as Hex | '',
    reason: row.reason,
    queuedAtMs: Number(row.queued_at),
  };
}

/** The key the queue's statistics give amounts under. */
export function exposureKey(chainId: number | string, asset: string): string {
  return `${Number(chainId)}:${asset.toLowerCase()}`;
}
