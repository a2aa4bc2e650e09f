/**
 * The settlement log's rows as both stores keep them, and back: one encoding, so SQLite and
 * PostgreSQL answer `openSettlements` alike. Addresses are kept lower-case; request ids as a JSON
 * array (an entry pays for one row today, several once settlements are batched).
 */
import type { LoggedTransaction, OpenSettlement, ReceiptStatus, SettlementEntry, SettlementSlot } from '../payments/ports.js';
import type { Address, Hex } from '../protocol/types.js';

export interface SettlementRow {
  chain_id: number | string; // BIGINT comes back from PostgreSQL as a string
  settler: string;
  nonce: number | string;
  state: 'open' | 'void' | 'done';
  request_ids: string;
  asset: string;
  payer: string;
  pay_to: string;
  amount: string;
  authorization_nonce: string;
  valid_before: number | string;
}

export interface TransactionRow {
  hash: string;
  raw: string;
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  sent_at: number | string;
}

export function entryRow(entry: SettlementEntry): Omit<SettlementRow, 'state'> {
  return {
    chain_id: entry.chainId,
    settler: entry.settler.toLowerCase(),
    nonce: entry.nonce,
    request_ids: JSON.stringify(entry.requestIds),
    asset: entry.asset.toLowerCase(),
    payer: entry.payer.toLowerCase(),
    pay_to: entry.payTo.toLowerCase(),
    amount: entry.amount,
    authorization_nonce: entry.authorizationNonce.toLowerCase(),
    valid_before: entry.validBefore,
  };
}

export function transactionRow(slot: SettlementSlot, tx: LoggedTransaction) {
  return {
    hash: tx.hash.toLowerCase(),
    chain_id: slot.chainId,
    settler: slot.settler.toLowerCase(),
    nonce: slot.nonce,
    raw: tx.raw,
    max_fee_per_gas: tx.maxFeePerGas,
    max_priority_fee_per_gas: tx.maxPriorityFeePerGas,
  };
}

/** An entry read back, with its transactions (oldest first) and the status and route of each row it pays for. */
export function openSettlement(row: SettlementRow, transactions: readonly TransactionRow[], rowOf: (requestId: string) => { status: ReceiptStatus; route: string } | undefined): OpenSettlement {
  const requestIds = JSON.parse(row.request_ids) as string[];
  return {
    chainId: Number(row.chain_id),
    settler: row.settler as Address,
    nonce: Number(row.nonce),
    state: row.state === 'void' ? 'void' : 'open',
    requestIds,
    asset: row.asset as Address,
    payer: row.payer as Address,
    payTo: row.pay_to as Address,
    amount: row.amount,
    authorizationNonce: row.authorization_nonce as Hex,
    validBefore: Number(row.valid_before),
    transactions: transactions.map((t) => ({
      hash: t.hash as Hex,
      raw: t.raw as Hex,
      maxFeePerGas: t.max_fee_per_gas,
      maxPriorityFeePerGas: t.max_priority_fee_per_gas,
      sentAtMs: Number(t.sent_at),
    })),
    receipts: requestIds.flatMap((requestId) => {
      const row = rowOf(requestId);
      return row === undefined ? [] : [{ requestId, status: row.status, route: row.route }];
    }),
  };
}
