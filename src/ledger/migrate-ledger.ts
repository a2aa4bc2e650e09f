/**
 * `ledger migrate`: copies what an embedded SQLite ledger must not forget (receipts, kept nonces,
 * spent proofs, payer penalties, settling keys' nonce counts and unfinished settlements) into
 * the PostgreSQL store, so replicas sharing it refuse every
 * payment the old process already took.
 *
 * Idempotent: each row goes in with `ON CONFLICT`, so a second run copies nothing and a row
 * PostgreSQL already has wins; except that a nonce kept in SQLite is kept in PostgreSQL even if
 * it was only reserved there (it may be on chain), and a payer penalty keeps the later expiry.
 * Reserved nonces are left behind: a reservation guards only a request in flight in the old
 * process, and a copied one would refuse the client's retry until it expired.
 *
 * The SQLite file is read in one read transaction (one snapshot, even while a gateway still
 * writes it), and everything is written in one PostgreSQL transaction: all or nothing.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { PostgresLedger } from './postgres-ledger.js';
import { LedgerSchemaError } from './schema-version.js';
import { SQLITE_SCHEMA_VERSION } from './sqlite-ledger.js';
import { TOTAL_EXPOSURE } from './deferred-rows.js';

/** Rows per multi-row INSERT: 500 receipts are 6,500 parameters, far below PostgreSQL's 65,535. */
const BATCH_ROWS = 500;

/** One table's copy. A new table (the settlement log) is one more entry in COPY_STEPS. */
interface CopyStep {
  /** The same name in both stores. */
  readonly table: string;
  /** What the summary calls its rows, one and many. */
  readonly noun: readonly [one: string, many: string];
  /** The same columns in both stores. */
  readonly columns: readonly string[];
  /** Which SQLite rows to copy; they are read in insertion (rowid) order. */
  readonly where?: string;
  /** What a row PostgreSQL already has does; only a row inserted or changed counts as copied. */
  readonly onConflict: string;
  /** Absent from files no gateway with a settlement log has opened: skipped there. */
  readonly optional?: boolean;
}

const COPY_STEPS: readonly CopyStep[] = [
  {
    // In rowid order, so PostgreSQL's `seq` (its tie-break among receipts of one millisecond) follows it.
    table: 'receipts',
    noun: ['receipt', 'receipts'],
    columns: ['request_id', 'time', 'route', 'method', 'path', 'amount', 'asset', 'network', 'payer', 'nonce', 'tx_hash', 'status', 'reason'],
    onConflict: 'ON CONFLICT (request_id) DO NOTHING',
  },
  {
    table: 'nonces',
    noun: ['kept nonce', 'kept nonces'],
    columns: ['key', 'state', 'expires_at'],
    where: `state = 'kept'`,
    onConflict: `ON CONFLICT (key) DO UPDATE SET state = 'kept' WHERE nonces.state = 'reserved'`,
  },
  {
    table: 'proofs',
    noun: ['proof', 'proofs'],
    columns: ['chain_id', 'tx_hash', 'claimed_at'],
    onConflict: 'ON CONFLICT (chain_id, tx_hash) DO NOTHING',
  },
  {
    table: 'payer_penalties',
    noun: ['payer penalty', 'payer penalties'],
    columns: ['chain_id', 'payer', 'until'],
    onConflict: 'ON CONFLICT (chain_id, payer) DO UPDATE SET until = excluded.until WHERE payer_penalties.until < excluded.until',
  },
  {
    // The next transaction nonce of each settling key: never lowered, so no nonce is used twice.
    table: 'settler_nonces',
    noun: ['settler nonce count', 'settler nonce counts'],
    columns: ['chain_id', 'settler', 'next_nonce'],
    onConflict: 'ON CONFLICT (chain_id, settler) DO UPDATE SET next_nonce = excluded.next_nonce WHERE settler_nonces.next_nonce < excluded.next_nonce',
    optional: true,
  },
  {
    // Unfinished settlements, for the replicas' reconciler to finish; finished ones are history.
    table: 'settlements',
    noun: ['unfinished settlement', 'unfinished settlements'],
    columns: ['chain_id', 'settler', 'nonce', 'state', 'request_ids', 'asset', 'payer', 'pay_to', 'amount', 'authorization_nonce', 'valid_before', 'created_at'],
    where: `state <> 'done'`,
    onConflict: 'ON CONFLICT (chain_id, settler, nonce) DO NOTHING',
    optional: true,
  },
  {
    table: 'settlement_transactions',
    noun: ['settlement transaction', 'settlement transactions'],
    columns: ['hash', 'chain_id', 'settler', 'nonce', 'raw', 'max_fee_per_gas', 'max_priority_fee_per_gas', 'sent_at'],
    where: `EXISTS (SELECT 1 FROM settlements s WHERE s.chain_id = settlement_transactions.chain_id AND s.settler = settlement_transactions.settler
      AND s.nonce = settlement_transactions.nonce AND s.state <> 'done')`,
    onConflict: 'ON CONFLICT (hash) DO NOTHING',
    optional: true,
  },
  {
    // settlement: deferred: payments served and still owed, for the replicas' batchers to settle.
    table: 'deferred_settlements',
    noun: ['unsettled deferred payment', 'unsettled deferred payments'],
    columns: ['id', 'request_id', 'route', 'chain_id', 'asset', 'payer', 'pay_to', 'amount', 'valid_after', 'valid_before', 'authorization_nonce', 'signature', 'state', 'settler', 'slot_nonce', 'tx_hash', 'reason', 'queued_at'],
    where: `state IN ('queued', 'batched')`,
    onConflict: 'ON CONFLICT (id) DO NOTHING',
    optional: true,
  },
];

/**
 * The exposure totals (per payer and per asset) from the unsettled deferred payments PostgreSQL
 * now holds, rather than copied: a total copied twice, or beside the target's own, would count twice.
 */
const RECOUNT_EXPOSURE = `
  INSERT INTO deferred_exposure (chain_id, asset, payer, amount)
    SELECT chain_id, asset, payer, sum(amount::numeric) FROM deferred_settlements WHERE state IN ('queued', 'batched') GROUP BY chain_id, asset, payer
    UNION ALL
    SELECT chain_id, asset, '${TOTAL_EXPOSURE}', sum(amount::numeric) FROM deferred_settlements WHERE state IN ('queued', 'batched') GROUP BY chain_id, asset
  ON CONFLICT (chain_id, asset, payer) DO UPDATE SET amount = excluded.amount`;

/** What one table's copy did: rows read from SQLite, and how many of them changed PostgreSQL. */
export interface TableCopy {
  readonly noun: readonly [one: string, many: string];
  readonly read: number;
  readonly copied: number;
}

/**
 * Copies the SQLite ledger at `fromPath` into the PostgreSQL database at `url`, creating or
 * migrating its schema first. Throws, having written nothing, on a missing file, a file that is
 * not a ledger, a schema newer than this gateway's in either store, or any failed statement.
 */
export async function migrateSqliteToPostgres(fromPath: string, url: string): Promise<TableCopy[]> {
  const source = openSource(fromPath);
  try {
    // The ledger's own start-up path: creates or migrates the schema, or refuses a newer one.
    await (await PostgresLedger.open(url, { pool: 1 })).close();
    const target = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    // A connection lost between queries fails the next one (and so the copy); without a listener
    // its 'error' event would end the process instead of printing the reason.
    target.on('error', () => {});
    await target.connect();
    try {
      source.exec('BEGIN');
      await target.query('BEGIN');
      try {
        // The copy is receipts of money: on the server's disk before the command says it is done.
        await target.query('SET LOCAL synchronous_commit = on');
        const copies: TableCopy[] = [];
        const tables = tablesOf(source);
        for (const step of COPY_STEPS) if (tables.has(step.table)) copies.push(await copyTable(step, source, target));
        if (tables.has('deferred_settlements')) await target.query(RECOUNT_EXPOSURE);
        await target.query('COMMIT');
        return copies;
      } catch (err) {
        await target.query('ROLLBACK').catch(() => {});
        throw err;
      }
    } finally {
      await target.end();
    }
  } finally {
    source.close();
  }
}

/** Opens the file read-only, refusing one that is absent, newer than this gateway, or lacks a ledger table. */
function openSource(path: string): Database.Database {
  // better-sqlite3 would say only "unable to open database file".
  if (!existsSync(path)) throw new Error(`${path}: file not found`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SQLITE_SCHEMA_VERSION) throw new LedgerSchemaError('sqlite', version, SQLITE_SCHEMA_VERSION);
    const tables = tablesOf(db);
    const missing = COPY_STEPS.find((step) => !step.optional && !tables.has(step.table));
    if (missing) throw new Error(`${path} is not an x402-gateway SQLite ledger: it has no ${missing.table} table`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function tablesOf(db: Database.Database): Set<string> {
  return new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
}

/** Streams one table's rows from SQLite into PostgreSQL, BATCH_ROWS per INSERT. */
async function copyTable(step: CopyStep, source: Database.Database, target: pg.Client): Promise<TableCopy> {
  const select = source.prepare(
    `SELECT ${step.columns.join(', ')} FROM ${step.table} ${step.where ? `WHERE ${step.where}` : ''} ORDER BY rowid`,
  );
  let read = 0;
  let copied = 0;
  let batch: unknown[][] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const result = await target.query(insertSql(step, batch.length), batch.flat());
    read += batch.length;
    copied += result.rowCount ?? 0;
    batch = [];
  };
  // Nothing else runs on the SQLite connection while this iterator is open, as better-sqlite3 requires.
  for (const row of select.raw().iterate() as IterableIterator<unknown[]>) {
    batch.push(row);
    if (batch.length === BATCH_ROWS) await flush();
  }
  await flush();
  return { noun: step.noun, read, copied };
}

/** `INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT ...` for `rows` rows. */
function insertSql(step: CopyStep, rows: number): string {
  const width = step.columns.length;
  const tuples = Array.from({ length: rows }, (_, r) => `(${step.columns.map((_, c) => `$${r * width + c + 1}`).join(', ')})`);
  return `INSERT INTO ${step.table} (${step.columns.join(', ')}) VALUES ${tuples.join(', ')} ${step.onConflict}`;
}
