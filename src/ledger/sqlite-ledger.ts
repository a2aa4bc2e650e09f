/**
 * The embedded ledger: one SQLite file, no server to run. Nonce reservations, spent tx proofs,
 * one receipt row per payment outcome, and the payers refused after a reverted settlement.
 *
 * Durability (the `Ledger` contract): WAL journal; a write that records money is committed with
 * `synchronous = FULL`, so it has reached the disk when its promise resolves, and a receipt
 * recorded before the response is sent survives a crash right after it. Reservations, releases
 * and rows of outcomes that moved nothing are committed with `synchronous = NORMAL`: no fsync of
 * their own, durable across a process crash, and on disk with the next FULL commit or checkpoint.
 *
 * Group commit: a FULL commit is an fsync, and better-sqlite3 runs it on the event loop, which
 * waits for the disk (0.3 ms to several ms) with every other request. So writes asked for in one
 * turn of the event loop are committed together, in the order asked, in one transaction: one
 * fsync for all of them (if any records money), and no promise resolves before its commit.
 * Each write runs in its own savepoint, so one that fails (a constraint) rolls back alone; a
 * failed commit fails every write of the batch.
 */
import Database from 'better-sqlite3';
import type { Address, Hex } from '../protocol/types.js';
import { entryRow, openSettlement, transactionRow, type SettlementRow, type TransactionRow } from './settlement-rows.js';
import {
  MONEY_STATUSES,
  PRUNABLE_STATUSES,
  nonceKeyString,
  systemClock,
  type Clock,
  type Ledger,
  type NonceKey,
  HOUR_MS,
  type PendingReceipt,
  type Receipt,
  type ReceiptTotal,
  type ReceiptQuery,
  type ReceiptStatus,
  type LoggedTransaction,
  type OpenSettlement,
  type SettlementEntry,
  type SettlementOutcome,
  type SettlementSlot,
  type Delivery,
  type DeliveryTerms,
  type DeferredItem,
  type DeferredOutcome,
  type DeferredStatus,
  type ExposureCaps,
  type QueueStats,
} from '../payments/ports.js';
import { deliveryFromRow, type DeliveryRow } from './delivery-rows.js';
import { firstHourFrom, receiptFromRow, receiptNonceKey, receiptToRow, totalFromRow, type ReceiptRow, type TotalRow } from './receipt-rows.js';
import { LedgerSchemaError } from './schema-version.js';
import { openLedgerFile } from './sqlite-file-access.js';
import { deferredItemFromRow, deferredRow, deferredStatusFromRow, exposureKey, TOTAL_EXPOSURE, type DeferredRow } from './deferred-rows.js';

/**
 * The schema version this gateway writes, kept in the file's `user_version`. Files made before
 * versions were kept read 0 and have the same tables as version 1.
 */
export const SQLITE_SCHEMA_VERSION = 4;

/**
 * SQL functions the triggers and the backfill of version 4 call, registered on every connection
 * this class opens: `x402_atomic_add(sum, amount, sign)` is `sum + sign * amount` and
 * `x402_atomic_sum(amount)` the aggregate, on decimal strings of atomic units ('' counts 0),
 * exact at any size. Any other program writing receipts into the file must register them too.
 */
const ATOMIC_ADD = 'x402_atomic_add';
const ATOMIC_SUM = 'x402_atomic_sum';

const atomic = (value: unknown): bigint => (typeof value === 'string' && value !== '' ? BigInt(value) : 0n);

function registerAtomicFunctions(db: Database.Database): void {
  db.function(ATOMIC_ADD, { deterministic: true }, (sum: unknown, amount: unknown, sign: unknown) =>
    (atomic(sum) + (Number(sign) < 0 ? -atomic(amount) : atomic(amount))).toString(),
  );
  db.aggregate(ATOMIC_SUM, { start: 0n, step: (total: bigint, amount: unknown) => total + atomic(amount), result: (total: bigint) => total.toString() });
}

/**
 * Version 2: what a kept nonce bought (for re-delivery, ports.ts `Delivery`): the resource, the
 * signature's hash, the receipt row, whether its answer ended and was delivered, how many re-deliveries.
 */
const DELIVERY_COLUMNS: readonly (readonly [name: string, type: string])[] = [
  ['resource', `TEXT NOT NULL DEFAULT ''`],
  ['signature', `TEXT NOT NULL DEFAULT ''`],
  ['request_id', `TEXT NOT NULL DEFAULT ''`],
  ['ended', 'INTEGER NOT NULL DEFAULT 0'],
  ['delivered', 'INTEGER NOT NULL DEFAULT 0'],
  ['redeliveries', 'INTEGER NOT NULL DEFAULT 0'],
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS nonces (
  key TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('reserved', 'kept')),
  expires_at INTEGER NOT NULL
);
-- Version 2 adds the re-delivery columns to nonces (DELIVERY_COLUMNS, added by #upgrade).
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
CREATE INDEX IF NOT EXISTS receipts_pending ON receipts (time) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS payer_penalties (
  chain_id INTEGER NOT NULL,
  payer TEXT NOT NULL,
  until INTEGER NOT NULL,
  PRIMARY KEY (chain_id, payer)
);
CREATE TABLE IF NOT EXISTS settler_nonces (
  chain_id INTEGER NOT NULL,
  settler TEXT NOT NULL,
  next_nonce INTEGER NOT NULL,
  PRIMARY KEY (chain_id, settler)
);
CREATE TABLE IF NOT EXISTS settlements (
  chain_id INTEGER NOT NULL,
  settler TEXT NOT NULL,
  nonce INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'void', 'done')),
  request_ids TEXT NOT NULL,
  asset TEXT NOT NULL,
  payer TEXT NOT NULL,
  pay_to TEXT NOT NULL,
  amount TEXT NOT NULL,
  authorization_nonce TEXT NOT NULL,
  valid_before INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (chain_id, settler, nonce)
);
CREATE INDEX IF NOT EXISTS settlements_unfinished ON settlements (chain_id, settler, nonce) WHERE state <> 'done';
CREATE TABLE IF NOT EXISTS settlement_transactions (
  hash TEXT PRIMARY KEY,
  chain_id INTEGER NOT NULL,
  settler TEXT NOT NULL,
  nonce INTEGER NOT NULL,
  raw TEXT NOT NULL,
  max_fee_per_gas TEXT NOT NULL,
  max_priority_fee_per_gas TEXT NOT NULL,
  sent_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS settlement_transactions_slot ON settlement_transactions (chain_id, settler, nonce);
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until INTEGER NOT NULL
);
-- Version 3: the settlement queue of settlement: deferred (deferred-rows.ts).
CREATE TABLE IF NOT EXISTS deferred_settlements (
  id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  route TEXT NOT NULL,
  chain_id INTEGER NOT NULL,
  asset TEXT NOT NULL,
  payer TEXT NOT NULL,
  pay_to TEXT NOT NULL,
  amount TEXT NOT NULL,
  valid_after TEXT NOT NULL,
  valid_before TEXT NOT NULL,
  authorization_nonce TEXT NOT NULL,
  signature TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'batched', 'settled', 'failed')),
  settler TEXT NOT NULL DEFAULT '',
  slot_nonce INTEGER,
  tx_hash TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  queued_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS deferred_failures ON deferred_settlements (chain_id, payer, finished_at) WHERE state = 'failed';
CREATE INDEX IF NOT EXISTS deferred_queue ON deferred_settlements (chain_id, state, queued_at);
CREATE INDEX IF NOT EXISTS deferred_slot ON deferred_settlements (chain_id, settler, slot_nonce);
CREATE TABLE IF NOT EXISTS deferred_exposure (
  chain_id INTEGER NOT NULL,
  asset TEXT NOT NULL,
  payer TEXT NOT NULL,
  amount TEXT NOT NULL,
  PRIMARY KEY (chain_id, asset, payer)
);
-- Version 4: receipt rows counted and summed per hour, route, network, asset and status, kept by
-- triggers in the write that changes a row (hourlyTotals reads it: the dashboard's figures cost
-- a read of a few hundred groups, not a scan of the day's rows on the event loop). Amounts are
-- decimal strings summed by ATOMIC_ADD, a function this class registers (BigInt): an asset may
-- have up to 36 decimals, and a 64-bit sum of such amounts would overflow and fail the write.
CREATE TABLE IF NOT EXISTS receipt_hours (
  hour INTEGER NOT NULL,
  route TEXT NOT NULL,
  network TEXT NOT NULL,
  asset TEXT NOT NULL,
  status TEXT NOT NULL,
  count INTEGER NOT NULL,
  atomic TEXT NOT NULL,
  PRIMARY KEY (hour, route, network, asset, status)
);
CREATE TRIGGER IF NOT EXISTS receipt_hours_insert AFTER INSERT ON receipts BEGIN
  ${addToHour('new')}
END;
CREATE TRIGGER IF NOT EXISTS receipt_hours_update AFTER UPDATE OF time, route, network, asset, status, amount ON receipts BEGIN
  ${takeFromHour('old')}
  ${addToHour('new')}
END;
CREATE TRIGGER IF NOT EXISTS receipt_hours_delete AFTER DELETE ON receipts BEGIN
  ${takeFromHour('old')}
END;
`;

/** Trigger statement: row `r` (new or old) counted into its hour's group. */
function addToHour(r: 'new' | 'old'): string {
  return `INSERT INTO receipt_hours VALUES ((${r}.time / ${HOUR_MS}) * ${HOUR_MS}, ${r}.route, ${r}.network, ${r}.asset, ${r}.status, 1, ${ATOMIC_ADD}('0', ${r}.amount, 1))
    ON CONFLICT (hour, route, network, asset, status) DO UPDATE SET count = count + 1, atomic = ${ATOMIC_ADD}(atomic, excluded.atomic, 1);`;
}

/** Trigger statement: row `r` taken out of its hour's group. */
function takeFromHour(r: 'new' | 'old'): string {
  return `UPDATE receipt_hours SET count = count - 1, atomic = ${ATOMIC_ADD}(atomic, ${r}.amount, -1)
    WHERE hour = (${r}.time / ${HOUR_MS}) * ${HOUR_MS} AND route = ${r}.route AND network = ${r}.network AND asset = ${r}.asset AND status = ${r}.status;`;
}

/** Fills receipt_hours from the rows of a file written before version 4 (the triggers keep it from then on). */
const BACKFILL_RECEIPT_HOURS = `
DELETE FROM receipt_hours;
INSERT INTO receipt_hours
  SELECT (time / ${HOUR_MS}) * ${HOUR_MS}, route, network, asset, status, count(*), ${ATOMIC_SUM}(amount)
  FROM receipts GROUP BY 1, 2, 3, 4, 5;
`;


export interface SqliteLedgerOptions {
  /** The time reservation expiry, proof claims and payer penalties are judged by; systemClock by default. */
  readonly clock?: Clock;
}

/** The `Ledger` in one SQLite file (`':memory:'` for none). */
export class SqliteLedger implements Ledger {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #stmts;
  /** Writes waiting for the next group commit (see the file comment). */
  #queue: QueuedWrite[] = [];
  /** The connection's current `synchronous` setting: FULL (fsync per commit) or NORMAL. */
  #syncFull = true;
  readonly #commitBatch: (batch: readonly QueuedWrite[]) => WriteOutcome[];

  constructor(path: string, options: SqliteLedgerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#db = openLedgerFile(path);
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    if (version > SQLITE_SCHEMA_VERSION) {
      this.#db.close();
      throw new LedgerSchemaError('sqlite', version, SQLITE_SCHEMA_VERSION);
    }
    registerAtomicFunctions(this.#db);
    this.#db.exec(SCHEMA);
    this.#upgrade();
    if (version < 4) this.#db.transaction(() => this.#db.exec(BACKFILL_RECEIPT_HOURS))();
    if (version < SQLITE_SCHEMA_VERSION) this.#db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
    this.#stmts = {
      // A reservation whose authorization has expired can be taken again: the chain refuses it anyway.
      reserve: this.#db.prepare(
        `INSERT INTO nonces (key, state, expires_at) VALUES (?, 'reserved', ?)
         ON CONFLICT (key) DO UPDATE SET state = 'reserved', expires_at = excluded.expires_at
         WHERE nonces.state = 'reserved' AND nonces.expires_at < ?`,
      ),
      release: this.#db.prepare(`DELETE FROM nonces WHERE key = ?`),
      keep: this.#db.prepare(`UPDATE nonces SET state = 'kept', resource = ?, signature = ?, request_id = ? WHERE key = ?`),
      deliveryOf: this.#db.prepare(
        `SELECT n.resource, n.signature, n.request_id, n.ended, n.delivered, n.redeliveries, r.status, r.tx_hash, r.payer, r.reason
         FROM nonces n LEFT JOIN receipts r ON r.request_id = n.request_id WHERE n.key = ? AND n.state = 'kept'`,
      ),
      claimRedelivery: this.#db.prepare(`UPDATE nonces SET redeliveries = redeliveries + 1 WHERE key = ? AND state = 'kept' AND delivered = 0 AND redeliveries < ?`),
      answerEnded: this.#db.prepare(`UPDATE nonces SET ended = 1, delivered = max(delivered, ?) WHERE key = ? AND state = 'kept'`),
      claim: this.#db.prepare(`INSERT OR IGNORE INTO proofs (chain_id, tx_hash, claimed_at) VALUES (?, ?, ?)`),
      record: this.#db.prepare(
        `INSERT INTO receipts (request_id, time, route, method, path, amount, asset, network, payer, nonce, tx_hash, status, reason)
         VALUES (@request_id, @time, @route, @method, @path, @amount, @asset, @network, @payer, @nonce, @tx_hash, @status, @reason)
         ON CONFLICT (request_id) DO UPDATE SET time = excluded.time, status = excluded.status, reason = excluded.reason,
           tx_hash = excluded.tx_hash, payer = excluded.payer
         WHERE receipts.status NOT IN ('settled', 'settle_failed')`,
      ),
      list: this.#db.prepare(`SELECT * FROM receipts WHERE time >= ? ORDER BY time DESC, rowid DESC LIMIT ?`),
      listStatus: this.#db.prepare(`SELECT * FROM receipts WHERE time >= ? AND status = ? ORDER BY time DESC, rowid DESC LIMIT ?`),
      // Groups every row has left (count 0) are not shown.
      hourlyTotals: this.#db.prepare(`SELECT hour, route, network, asset, status, count, atomic FROM receipt_hours WHERE hour >= ? AND count > 0`),
      penalise: this.#db.prepare(
        `INSERT INTO payer_penalties (chain_id, payer, until) VALUES (?, ?, ?)
         ON CONFLICT (chain_id, payer) DO UPDATE SET until = max(until, excluded.until)`,
      ),
      // Expired refusals are dropped whenever one is added, so the table holds only live ones.
      prunePenalties: this.#db.prepare(`DELETE FROM payer_penalties WHERE until <= ?`),
      penalty: this.#db.prepare(`SELECT until FROM payer_penalties WHERE chain_id = ? AND payer = ? AND until > ?`),
      takeNonce: this.#db.prepare(
        `UPDATE settler_nonces SET next_nonce = next_nonce + 1 WHERE chain_id = ? AND settler = ? RETURNING next_nonce - 1 AS nonce`,
      ),
      raiseNonceFloor: this.#db.prepare(
        `INSERT INTO settler_nonces (chain_id, settler, next_nonce) VALUES (?, ?, ?)
         ON CONFLICT (chain_id, settler) DO UPDATE SET next_nonce = max(next_nonce, excluded.next_nonce)`,
      ),
      returnNonce: this.#db.prepare(`UPDATE settler_nonces SET next_nonce = next_nonce - 1 WHERE chain_id = ? AND settler = ? AND next_nonce = ? + 1`),
      logEntry: this.#db.prepare(
        `INSERT INTO settlements (chain_id, settler, nonce, state, request_ids, asset, payer, pay_to, amount, authorization_nonce, valid_before, created_at)
         VALUES (@chain_id, @settler, @nonce, 'open', @request_ids, @asset, @payer, @pay_to, @amount, @authorization_nonce, @valid_before, @now)`,
      ),
      logTransaction: this.#db.prepare(
        `INSERT INTO settlement_transactions (hash, chain_id, settler, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at)
         VALUES (@hash, @chain_id, @settler, @nonce, @raw, @max_fee_per_gas, @max_priority_fee_per_gas, @now)`,
      ),
      reopenSlot: this.#db.prepare(`UPDATE settlements SET state = 'open' WHERE chain_id = ? AND settler = ? AND nonce = ? AND state = 'void'`),
      hashOnPending: this.#db.prepare(`UPDATE receipts SET tx_hash = ? WHERE request_id = ? AND status = 'pending'`),
      setSlotState: this.#db.prepare(`UPDATE settlements SET state = ? WHERE chain_id = ? AND settler = ? AND nonce = ? AND state <> 'done'`),
      slotRequests: this.#db.prepare(`SELECT request_ids FROM settlements WHERE chain_id = ? AND settler = ? AND nonce = ?`),
      outcomeOnPending: this.#db.prepare(`UPDATE receipts SET status = ?, tx_hash = ?, reason = ?, time = ? WHERE request_id = ? AND status = 'pending'`),
      openEntries: this.#db.prepare(`SELECT * FROM settlements WHERE chain_id = ? AND settler = ? AND state <> 'done' ORDER BY nonce LIMIT ?`),
      slotTransactions: this.#db.prepare(`SELECT * FROM settlement_transactions WHERE chain_id = ? AND settler = ? AND nonce = ? ORDER BY sent_at, rowid`),
      pending: this.#db.prepare(`SELECT count(*) AS count, min(time) AS oldest FROM receipts WHERE status = 'pending'`),
      pendingRows: this.#db.prepare(`SELECT * FROM receipts WHERE status = 'pending' AND network = ? AND time < ? ORDER BY time LIMIT ?`),
      keptExpiry: this.#db.prepare(`SELECT expires_at FROM nonces WHERE key = ? AND state = 'kept'`),
      pruneReceipts: this.#db.prepare(
        `DELETE FROM receipts WHERE rowid IN (SELECT rowid FROM receipts WHERE time < ? AND status IN (${PRUNABLE_STATUSES.map((s) => `'${s}'`).join(', ')}) LIMIT ?)`,
      ),
      pruneReservations: this.#db.prepare(`DELETE FROM nonces WHERE key IN (SELECT key FROM nonces WHERE state = 'reserved' AND expires_at < ? LIMIT ?)`),
      receiptStatus: this.#db.prepare(`SELECT status, route FROM receipts WHERE request_id = ?`),
      enqueueDeferred: this.#db.prepare(
        `INSERT INTO deferred_settlements (id, request_id, route, chain_id, asset, payer, pay_to, amount, valid_after, valid_before, authorization_nonce, signature, state, queued_at)
         VALUES (@id, @request_id, @route, @chain_id, @asset, @payer, @pay_to, @amount, @valid_after, @valid_before, @authorization_nonce, @signature, 'queued', @queued_at)`,
      ),
      exposureOf: this.#db.prepare(`SELECT amount FROM deferred_exposure WHERE chain_id = ? AND asset = ? AND payer = ?`),
      setExposure: this.#db.prepare(
        `INSERT INTO deferred_exposure (chain_id, asset, payer, amount) VALUES (?, ?, ?, ?)
         ON CONFLICT (chain_id, asset, payer) DO UPDATE SET amount = excluded.amount`,
      ),
      queuedDeferred: this.#db.prepare(`SELECT * FROM deferred_settlements WHERE chain_id = ? AND state = 'queued' ORDER BY queued_at, rowid LIMIT ?`),
      batchItem: this.#db.prepare(`UPDATE deferred_settlements SET state = 'batched', settler = ?, slot_nonce = ?, tx_hash = ? WHERE id = ? AND state = 'queued'`),
      batchItems: this.#db.prepare(`SELECT * FROM deferred_settlements WHERE chain_id = ? AND settler = ? AND slot_nonce = ? AND state = 'batched' ORDER BY rowid`),
      deferredById: this.#db.prepare(`SELECT * FROM deferred_settlements WHERE id = ?`),
      finishItem: this.#db.prepare(`UPDATE deferred_settlements SET state = ?, tx_hash = ?, reason = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'batched')`),
      lastFailure: this.#db.prepare(`SELECT max(finished_at) AS at FROM deferred_settlements WHERE chain_id = ? AND payer = ? AND state = 'failed'`),
      outcomeOnQueued: this.#db.prepare(`UPDATE receipts SET status = ?, tx_hash = ?, reason = ?, time = ? WHERE request_id = ? AND status = 'queued'`),
      requeueBatch: this.#db.prepare(`UPDATE deferred_settlements SET state = 'queued', settler = '', slot_nonce = NULL, tx_hash = '' WHERE chain_id = ? AND settler = ? AND slot_nonce = ? AND state = 'batched'`),
      exposureRows: this.#db.prepare(`SELECT chain_id, asset, amount FROM deferred_exposure WHERE payer = '${TOTAL_EXPOSURE}'`),
      oldestQueued: this.#db.prepare(`SELECT count(*) AS count, min(queued_at) AS oldest FROM deferred_settlements WHERE state IN ('queued', 'batched')`),
      holdLease: this.#db.prepare(
        `INSERT INTO leases (name, holder, until) VALUES (@name, @holder, @until)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until <= @now
         RETURNING holder`,
      ),
    };
    // Inside the batch's transaction a nested better-sqlite3 transaction is a savepoint: one
    // write's statements roll back together, and alone.
    const inSavepoint = this.#db.transaction((run: () => unknown) => run());
    this.#commitBatch = this.#db.transaction((batch: readonly QueuedWrite[]) =>
      batch.map((write): WriteOutcome => {
        try {
          return { ok: true, value: inSavepoint(write.run) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    );
  }

  reserveNonce(key: NonceKey, expiresAtSeconds: number): Promise<boolean> {
    return this.#write(false, () => this.#stmts.reserve.run(nonceKeyString(key), expiresAtSeconds, this.#nowSeconds()).changes === 1);
  }

  releaseNonce(key: NonceKey): Promise<void> {
    return this.#write(false, () => {
      this.#stmts.release.run(nonceKeyString(key));
    });
  }

  beginSettlement(key: NonceKey, pending: Receipt, terms?: DeliveryTerms): Promise<void> {
    // One write: the nonce kept and the pending row land together or not at all.
    return this.#write(true, () => {
      this.#stmts.keep.run(terms?.resource ?? '', terms?.signature ?? '', pending.requestId, nonceKeyString(key));
      this.#stmts.record.run(receiptToRow(pending));
    });
  }

  claimProof(chainId: number, txHash: Hex): Promise<boolean> {
    return this.#write(true, () => this.#stmts.claim.run(chainId, txHash.toLowerCase(), this.#nowSeconds()).changes === 1);
  }

  penalisePayer(chainId: number, payer: Hex, untilSeconds: number): Promise<void> {
    return this.#write(false, () => {
      this.#stmts.prunePenalties.run(this.#nowSeconds());
      this.#stmts.penalise.run(chainId, payer.toLowerCase(), untilSeconds);
    });
  }

  async payerPenalty(chainId: number, payer: Hex): Promise<number | undefined> {
    const row = this.#stmts.penalty.get(chainId, payer.toLowerCase(), this.#nowSeconds()) as { until: number } | undefined;
    return row?.until;
  }

  record(r: Receipt): Promise<boolean> {
    return this.#write(MONEY_STATUSES.has(r.status), () => this.#stmts.record.run(receiptToRow(r)).changes > 0);
  }

  async receipts(query: ReceiptQuery): Promise<Receipt[]> {
    const rows = query.status === undefined ? this.#stmts.list.all(query.since ?? 0, query.limit ?? 1000) : this.#stmts.listStatus.all(query.since ?? 0, query.status, query.limit ?? 1000);
    return (rows as ReceiptRow[]).map(receiptFromRow);
  }

  async hourlyTotals(sinceMs: number): Promise<ReceiptTotal[]> {
    return (this.#stmts.hourlyTotals.all(firstHourFrom(sinceMs)) as TotalRow[]).map(totalFromRow);
  }


  /** Adds what later versions added to tables that older files already have. */
  #upgrade(): void {
    const columns = new Set((this.#db.prepare(`PRAGMA table_info(nonces)`).all() as { name: string }[]).map((c) => c.name));
    for (const [name, type] of DELIVERY_COLUMNS) {
      if (!columns.has(name)) this.#db.exec(`ALTER TABLE nonces ADD COLUMN ${name} ${type}`);
    }
  }

  deliveryOf(key: NonceKey): Promise<Delivery | undefined> {
    const row = this.#stmts.deliveryOf.get(nonceKeyString(key)) as DeliveryRow | undefined;
    return Promise.resolve(row === undefined ? undefined : deliveryFromRow(row));
  }

  claimRedelivery(key: NonceKey, max: number): Promise<boolean> {
    return this.#write(false, () => this.#stmts.claimRedelivery.run(nonceKeyString(key), max).changes === 1);
  }

  answerEnded(key: NonceKey, delivered: boolean): Promise<void> {
    return this.#write(false, () => {
      this.#stmts.answerEnded.run(delivered ? 1 : 0, nonceKeyString(key));
    });
  }

  takeNonce(chainId: number, settler: Address): Promise<number | undefined> {
    return this.#write(false, () => (this.#stmts.takeNonce.get(chainId, settler.toLowerCase()) as { nonce: number } | undefined)?.nonce);
  }

  raiseNonceFloor(chainId: number, settler: Address, next: number): Promise<void> {
    return this.#write(false, () => {
      this.#stmts.raiseNonceFloor.run(chainId, settler.toLowerCase(), next);
    });
  }

  returnNonce(slot: SettlementSlot): Promise<boolean> {
    return this.#write(false, () => this.#stmts.returnNonce.run(slot.chainId, slot.settler.toLowerCase(), slot.nonce).changes === 1);
  }

  logSettlement(entry: SettlementEntry, transaction: LoggedTransaction): Promise<void> {
    return this.#write(true, () => {
      const now = this.#clock.nowMs();
      this.#stmts.logEntry.run({ ...entryRow(entry), now });
      this.#stmts.logTransaction.run({ ...transactionRow(entry, transaction), now });
      for (const id of entry.requestIds) this.#stmts.hashOnPending.run(transaction.hash, id);
    });
  }

  logReplacement(slot: SettlementSlot, transaction: LoggedTransaction): Promise<void> {
    return this.#write(true, () => {
      this.#stmts.logTransaction.run({ ...transactionRow(slot, transaction), now: this.#clock.nowMs() });
      this.#stmts.reopenSlot.run(slot.chainId, slot.settler.toLowerCase(), slot.nonce);
    });
  }

  voidSettlement(slot: SettlementSlot): Promise<void> {
    return this.#write(false, () => {
      this.#stmts.setSlotState.run('void', slot.chainId, slot.settler.toLowerCase(), slot.nonce);
    });
  }

  closeSettlement(slot: SettlementSlot, outcome?: SettlementOutcome): Promise<readonly string[]> {
    return this.#write(outcome !== undefined, () => {
      const settler = slot.settler.toLowerCase();
      this.#stmts.setSlotState.run('done', slot.chainId, settler, slot.nonce);
      if (outcome === undefined) return [];
      const row = this.#stmts.slotRequests.get(slot.chainId, settler, slot.nonce) as { request_ids: string } | undefined;
      const now = this.#clock.nowMs();
      const ids = row === undefined ? [] : (JSON.parse(row.request_ids) as string[]);
      return ids.filter((id) => this.#stmts.outcomeOnPending.run(outcome.status, outcome.transaction, outcome.reason, now, id).changes > 0);
    });
  }

  async openSettlements(chainId: number, settler: Address, limit: number): Promise<OpenSettlement[]> {
    const rows = this.#stmts.openEntries.all(chainId, settler.toLowerCase(), limit) as SettlementRow[];
    return rows.map((row) =>
      openSettlement(
        row,
        this.#stmts.slotTransactions.all(row.chain_id, row.settler, row.nonce) as TransactionRow[],
        (id) => this.#stmts.receiptStatus.get(id) as { status: ReceiptStatus; route: string } | undefined,
      ),
    );
  }

  enqueueDeferred(key: NonceKey, receipt: Receipt, item: DeferredItem, caps: ExposureCaps, terms?: DeliveryTerms): Promise<boolean> {
    // One write: the nonce kept, the queued row, the item and the exposure, or none of them.
    return this.#write(true, () => {
      const row = deferredRow(item);
      const amount = item.authorization.value;
      const payer = this.#exposure(row.chain_id, row.asset, row.payer) + amount;
      const total = this.#exposure(row.chain_id, row.asset, TOTAL_EXPOSURE) + amount;
      if (payer > caps.perPayer || total > caps.total) return false;
      this.#stmts.setExposure.run(row.chain_id, row.asset, row.payer, payer.toString());
      this.#stmts.setExposure.run(row.chain_id, row.asset, TOTAL_EXPOSURE, total.toString());
      this.#stmts.keep.run(terms?.resource ?? '', terms?.signature ?? '', receipt.requestId, nonceKeyString(key));
      this.#stmts.record.run(receiptToRow(receipt));
      this.#stmts.enqueueDeferred.run(row);
      return true;
    });
  }

  async queuedDeferred(chainId: number, limit: number): Promise<DeferredItem[]> {
    return (this.#stmts.queuedDeferred.all(chainId, limit) as DeferredRow[]).map(deferredItemFromRow);
  }

  logBatch(entry: SettlementEntry, transaction: LoggedTransaction, itemIds: readonly string[]): Promise<boolean> {
    return this.#write(true, () => {
      const settler = entry.settler.toLowerCase();
      let batched = 0;
      for (const id of itemIds) batched += this.#stmts.batchItem.run(settler, entry.nonce, transaction.hash, id).changes;
      // Another batcher took one: roll this write back (its savepoint), nothing logged.
      if (batched !== itemIds.length) throw new BatchTaken();
      const now = this.#clock.nowMs();
      this.#stmts.logEntry.run({ ...entryRow(entry), now });
      this.#stmts.logTransaction.run({ ...transactionRow(entry, transaction), now });
      return true;
    }).catch((err: unknown) => {
      if (err instanceof BatchTaken) return false;
      throw err;
    });
  }

  async batchItems(slot: SettlementSlot): Promise<DeferredItem[]> {
    return (this.#stmts.batchItems.all(slot.chainId, slot.settler.toLowerCase(), slot.nonce) as DeferredRow[]).map(deferredItemFromRow);
  }

  finishDeferred(outcomes: readonly DeferredOutcome[]): Promise<readonly string[]> {
    return this.#write(true, () => {
      const now = this.#clock.nowMs();
      const written: string[] = [];
      for (const outcome of outcomes) {
        const row = this.#stmts.deferredById.get(outcome.id) as DeferredRow | undefined;
        if (row === undefined) continue;
        if (this.#stmts.finishItem.run(outcome.state, outcome.transaction, outcome.reason, now, outcome.id).changes === 0) continue;
        const amount = BigInt(row.amount);
        for (const payer of [row.payer, TOTAL_EXPOSURE]) {
          this.#stmts.setExposure.run(row.chain_id, row.asset, payer, (this.#exposure(row.chain_id, row.asset, payer) - amount).toString());
        }
        const status = outcome.state === 'settled' ? 'settled' : 'settle_failed';
        if (this.#stmts.outcomeOnQueued.run(status, outcome.transaction, outcome.reason, now, row.request_id).changes > 0) written.push(row.request_id);
      }
      return written;
    });
  }

  requeueBatch(slot: SettlementSlot): Promise<number> {
    return this.#write(true, () => this.#stmts.requeueBatch.run(slot.chainId, slot.settler.toLowerCase(), slot.nonce).changes);
  }

  async lastDeferredFailure(chainId: number, payer: Address): Promise<number | undefined> {
    const row = this.#stmts.lastFailure.get(chainId, payer.toLowerCase()) as { at: number | null };
    return row.at ?? undefined;
  }

  async deferredStatus(id: string): Promise<DeferredStatus | undefined> {
    const row = this.#stmts.deferredById.get(id) as DeferredRow | undefined;
    return row === undefined ? undefined : deferredStatusFromRow(row);
  }

  async queueStats(): Promise<QueueStats> {
    const totals = this.#stmts.exposureRows.all() as { chain_id: number; asset: string; amount: string }[];
    const row = this.#stmts.oldestQueued.get() as { count: number; oldest: number | null };
    return {
      count: row.count,
      amounts: new Map(totals.map((t) => [exposureKey(t.chain_id, t.asset), BigInt(t.amount)])),
      oldestQueuedAtMs: row.oldest ?? undefined,
    };
  }

  /** The unsettled amount of `payer` (or TOTAL_EXPOSURE) in `asset` on the chain, in atomic units. */
  #exposure(chainId: number | string, asset: string, payer: string): bigint {
    const row = this.#stmts.exposureOf.get(chainId, asset, payer) as { amount: string } | undefined;
    return row === undefined ? 0n : BigInt(row.amount);
  }

  holdLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.#write(false, () => {
      const now = this.#clock.nowMs();
      return this.#stmts.holdLease.get({ name, holder, until: now + ttlMs, now }) !== undefined;
    });
  }

  async pendingReceipts(): Promise<{ count: number; oldestTimeMs: number | undefined }> {
    const row = this.#stmts.pending.get() as { count: number; oldest: number | null };
    return { count: row.count, oldestTimeMs: row.oldest ?? undefined };
  }

  async pendingRows(network: string, olderThanMs: number, limit: number): Promise<PendingReceipt[]> {
    return (this.#stmts.pendingRows.all(network, olderThanMs, limit) as ReceiptRow[]).map((row) => {
      const receipt = receiptFromRow(row);
      const key = receiptNonceKey(receipt);
      const kept = key === undefined ? undefined : (this.#stmts.keptExpiry.get(key) as { expires_at: number } | undefined);
      return { ...receipt, validBeforeSeconds: kept?.expires_at };
    });
  }

  prune(olderThanMs: number, limit: number): Promise<number> {
    return this.#write(false, () => this.#stmts.pruneReceipts.run(olderThanMs, limit).changes + this.#stmts.pruneReservations.run(this.#nowSeconds(), limit).changes);
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.#flush();
    if (this.#db.open) this.#db.close();
  }

  /** The clock's unix second, as the `INTEGER` columns store it. */
  #nowSeconds(): number {
    return Number(this.#clock.nowSeconds());
  }

  /**
   * Queues `run` for the next group commit; resolves with its result once that is committed, and
   * on disk if `durable` (then the whole batch is).
   */
  #write<T>(durable: boolean, run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, durable, resolve: resolve as (value: unknown) => void, reject });
      if (this.#queue.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    let outcomes: WriteOutcome[];
    try {
      if (!this.#db.open) throw new Error('ledger closed');
      const durable = batch.some((write) => write.durable);
      if (durable !== this.#syncFull) {
        this.#db.pragma(`synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
        this.#syncFull = durable;
      }
      outcomes = this.#commitBatch(batch);
    } catch (err) {
      for (const write of batch) write.reject(err);
      return;
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) write.resolve(outcome.value);
      else write.reject(outcome === undefined ? new Error('ledger write lost') : outcome.error);
    });
  }
}

/** Thrown inside logBatch's write to roll it back when an item was no longer queued. */
class BatchTaken extends Error {}

interface QueuedWrite {
  readonly run: () => unknown;
  readonly durable: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type WriteOutcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };
