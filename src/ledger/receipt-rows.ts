/**
 * A receipt as both stores keep it (`receipts` table columns) and back: one encoding, so SQLite
 * and PostgreSQL read and write rows alike.
 */
import { HOUR_MS, nonceKeyString, type Receipt, type ReceiptStatus, type ReceiptTotal } from '../payments/ports.js';
import { evmChainId, type Address, type Hex } from '../protocol/types.js';

export interface ReceiptRow {
  request_id: string;
  time: number | string; // BIGINT comes back from PostgreSQL as a string
  route: string;
  method: string;
  path: string;
  amount: string;
  asset: string;
  network: string;
  payer: string;
  nonce: string;
  tx_hash: string;
  status: string;
  reason: string;
}

/** The columns, in the order `receiptToRow`'s values and PostgreSQL's `$1..$13` follow. */
export const RECEIPT_COLUMNS = ['request_id', 'time', 'route', 'method', 'path', 'amount', 'asset', 'network', 'payer', 'nonce', 'tx_hash', 'status', 'reason'] as const;

/**
 * The longest path a row keeps; a longer one is cut and ends in `…`. A `**` route matches paths
 * of any length (up to the header limit), and every refused request's row would carry it whole.
 */
export const MAX_STORED_PATH_CHARS = 1_024;

function boundedPath(path: string): string {
  return path.length <= MAX_STORED_PATH_CHARS ? path : `${path.slice(0, MAX_STORED_PATH_CHARS - 1)}…`;
}

export function receiptToRow(r: Receipt): ReceiptRow & { time: number } {
  return {
    request_id: r.requestId,
    time: r.time,
    route: r.route,
    method: r.method,
    path: boundedPath(r.path),
    amount: r.amount,
    asset: r.asset,
    network: r.network,
    payer: r.payer,
    nonce: r.nonce,
    tx_hash: r.transaction,
    status: r.status,
    reason: r.reason,
  };
}

export function receiptFromRow(row: ReceiptRow): Receipt {
  return {
    time: Number(row.time),
    requestId: row.request_id,
    route: row.route,
    method: row.method,
    path: row.path,
    amount: row.amount,
    asset: row.asset,
    network: row.network,
    payer: row.payer,
    nonce: row.nonce,
    transaction: row.tx_hash,
    status: row.status as ReceiptStatus,
    reason: row.reason,
  };
}

/**
 * The `nonces` key of the authorization a row paid with (ports.ts `nonceKeyString`), from its
 * network (`eip155:<chain id>`), asset, payer and nonce; undefined when the row lacks one of them.
 */
export function receiptNonceKey(r: Receipt): string | undefined {
  const chainId = evmChainId(r.network);
  if (chainId === undefined || r.asset === '' || r.payer === '' || r.nonce === '') return undefined;
  return nonceKeyString({ chainId, asset: r.asset as Address, payer: r.payer as Address, nonce: r.nonce as Hex });
}

/** A row of the `hourlyTotals` query: numbers as SQLite (number) or PostgreSQL (BIGINT as string) give them. */
export interface TotalRow {
  hour: number | string;
  route: string;
  network: string;
  asset: string;
  status: string;
  count: number | string;
  /** Atomic units, decimal string. */
  atomic: string;
}

export function totalFromRow(row: TotalRow): ReceiptTotal {
  return {
    hourStartMs: Number(row.hour),
    route: row.route,
    network: row.network,
    asset: row.asset,
    status: row.status as ReceiptStatus,
    count: Number(row.count),
    atomic: row.atomic,
  };
}

/** The first hour `hourlyTotals(sinceMs)` covers: the one starting at `sinceMs`, or the next. */
export function firstHourFrom(sinceMs: number): number {
  return Math.ceil(sinceMs / HOUR_MS) * HOUR_MS;
}
