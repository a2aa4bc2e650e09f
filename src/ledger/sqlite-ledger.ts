/**
 * The embedded ledger: one SQLite file, no server to run. Nonce reservations, spent tx proofs and
 * one receipt row per payment outcome.
 *
 * Durability: WAL journal with `synchronous = FULL`, so a write has reached the disk when the call
 * returns; a receipt recorded before the response is sent survives a crash right after it.
 * better-sqlite3 is synchronous; each statement is short, and the async interface is kept so a
 * shared store (Postgres) can implement `Ledger` unchanged.
 */
import Database from 'better-sqlite3';
import type { Hex } from '../protocol/types.js';
import type { Ledger, NonceKey, Receipt, ReceiptQuery, ReceiptStatus } from '../payments/ports.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS nonces (
  key TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('reserved', 'kept')),
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS proofs (
  chain_id INTEGER NOT NULL,
  tx_hash TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  PRIMARY KEY (chain_id, tx_hash)
);
CREATE TABLE IF NOT EXISTS receipts (
  request_id TEXT PRIMARY KEY,
  time INTEGER NOT NULL,
  route TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  amount TEXT NOT NULL,
  asset TEXT NOT NULL,
  network TEXT NOT NULL,
  payer TEXT NOT NULL,
  nonce TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_time ON receipts (time);
`;

interface ReceiptRow {
  request_id: string;
  time: number;
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

function receiptRow(r: Receipt): ReceiptRow {
  return {
    request_id: r.requestId,
    time: r.time,
    route: r.route,
    method: r.method,
    path: r.path,
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

/** The replay key as one string: chain, asset, payer and nonce, case-folded. */
export function nonceKeyString(key: NonceKey): string {
  return `${key.chainId}:${key.asset.toLowerCase()}:${key.payer.toLowerCase()}:${key.nonce.toLowerCase()}`;
}

export class SqliteLedger implements Ledger {
  private readonly db: Database.Database;
  private readonly stmts;
  /** One transaction, one fsync: the nonce kept and the pending row written together. */
  private readonly beginTx: (key: NonceKey, pending: Receipt) => void;

  constructor(path: string, private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000)) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmts = {
      // A reservation whose authorization has expired can be taken again: the chain refuses it anyway.
      reserve: this.db.prepare(
        `INSERT INTO nonces (key, state, expires_at) VALUES (?, 'reserved', ?)
         ON CONFLICT (key) DO UPDATE SET state = 'reserved', expires_at = excluded.expires_at
         WHERE nonces.state = 'reserved' AND nonces.expires_at < ?`,
      ),
      release: this.db.prepare(`DELETE FROM nonces WHERE key = ?`),
      keep: this.db.prepare(`UPDATE nonces SET state = 'kept' WHERE key = ?`),
      claim: this.db.prepare(`INSERT OR IGNORE INTO proofs (chain_id, tx_hash, claimed_at) VALUES (?, ?, ?)`),
      record: this.db.prepare(
        `INSERT INTO receipts (request_id, time, route, method, path, amount, asset, network, payer, nonce, tx_hash, status, reason)
         VALUES (@request_id, @time, @route, @method, @path, @amount, @asset, @network, @payer, @nonce, @tx_hash, @status, @reason)
         ON CONFLICT (request_id) DO UPDATE SET time = excluded.time, status = excluded.status, reason = excluded.reason,
           tx_hash = excluded.tx_hash, payer = excluded.payer`,
      ),
      list: this.db.prepare(`SELECT * FROM receipts WHERE time >= ? ORDER BY time DESC, rowid DESC LIMIT ?`),
    };
    const { keep, record } = this.stmts;
    this.beginTx = this.db.transaction((key: NonceKey, pending: Receipt) => {
      keep.run(nonceKeyString(key));
      record.run(receiptRow(pending));
    });
  }

  async reserveNonce(key: NonceKey, expiresAtSeconds: number): Promise<boolean> {
    return this.stmts.reserve.run(nonceKeyString(key), expiresAtSeconds, this.nowSeconds()).changes === 1;
  }

  async releaseNonce(key: NonceKey): Promise<void> {
    this.stmts.release.run(nonceKeyString(key));
  }

  async beginSettlement(key: NonceKey, pending: Receipt): Promise<void> {
    this.beginTx(key, pending);
  }

  async claimProof(chainId: number, txHash: Hex): Promise<boolean> {
    return this.stmts.claim.run(chainId, txHash.toLowerCase(), this.nowSeconds()).changes === 1;
  }

  async record(r: Receipt): Promise<void> {
    this.stmts.record.run(receiptRow(r));
  }

  async receipts(query: ReceiptQuery): Promise<Receipt[]> {
    const rows = this.stmts.list.all(query.since ?? 0, query.limit ?? 1000) as ReceiptRow[];
    return rows.map((row) => ({
      time: row.time,
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
    }));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
