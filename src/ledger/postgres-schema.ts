/**
 * The PostgreSQL ledger's schema and its migrations. Each migration is one step from the version
 * before it; the version reached is kept in `x402_gateway_schema`. Every replica runs this at
 * start-up under one advisory lock, so the first migrates and the others find the work done; a
 * database migrated by a newer gateway is refused, not written with old assumptions.
 */
import type pg from 'pg';
import { LedgerSchemaError } from './schema-version.js';

/** Any fixed 64-bit number; it names this lock among the database's advisory locks. */
const MIGRATION_LOCK = 0x7834_3032_6777n; // "x402gw"

/** Migration `i` takes the schema from version `i` to `i + 1`. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE nonces (
     key TEXT PRIMARY KEY,
     state TEXT NOT NULL CHECK (state IN ('reserved', 'kept')),
     expires_at BIGINT NOT NULL
   );
   CREATE TABLE proofs (
     chain_id BIGINT NOT NULL,
     tx_hash TEXT NOT NULL,
     claimed_at BIGINT NOT NULL,
     PRIMARY KEY (chain_id, tx_hash)
   );
   CREATE TABLE receipts (
     seq BIGSERIAL,
     request_id TEXT PRIMARY KEY,
     time BIGINT NOT NULL,
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
   CREATE INDEX receipts_time ON receipts (time, seq);
   CREATE INDEX receipts_pending ON receipts (time) WHERE status = 'pending';
   CREATE TABLE payer_penalties (
     chain_id BIGINT NOT NULL,
     payer TEXT NOT NULL,
     until BIGINT NOT NULL,
     PRIMARY KEY (chain_id, payer)
   );
   CREATE TABLE settler_nonces (
     chain_id BIGINT NOT NULL,
     settler TEXT NOT NULL,
     next_nonce BIGINT NOT NULL,
     PRIMARY KEY (chain_id, settler)
   );
   CREATE TABLE settlements (
     chain_id BIGINT NOT NULL,
     settler TEXT NOT NULL,
     nonce BIGINT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('open', 'void', 'done')),
     request_ids TEXT NOT NULL,
     asset TEXT NOT NULL,
     payer TEXT NOT NULL,
     pay_to TEXT NOT NULL,
     amount TEXT NOT NULL,
     authorization_nonce TEXT NOT NULL,
     valid_before BIGINT NOT NULL,
     created_at BIGINT NOT NULL,
     PRIMARY KEY (chain_id, settler, nonce)
   );
   CREATE INDEX settlements_unfinished ON settlements (chain_id, settler, nonce) WHERE state <> 'done';
   CREATE TABLE settlement_transactions (
     hash TEXT PRIMARY KEY,
     chain_id BIGINT NOT NULL,
     settler TEXT NOT NULL,
     nonce BIGINT NOT NULL,
     raw TEXT NOT NULL,
     max_fee_per_gas TEXT NOT NULL,
     max_priority_fee_per_gas TEXT NOT NULL,
     sent_at BIGINT NOT NULL
   );
   CREATE INDEX settlement_transactions_slot ON settlement_transactions (chain_id, settler, nonce);
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     holder TEXT NOT NULL,
     until BIGINT NOT NULL
   );`,
  // 2: what a kept nonce bought, for re-delivery (ports.ts `Delivery`).
  `ALTER TABLE nonces
     ADD COLUMN resource TEXT NOT NULL DEFAULT '',
     ADD COLUMN signature TEXT NOT NULL DEFAULT '',
     ADD COLUMN request_id TEXT NOT NULL DEFAULT '',
     ADD COLUMN ended BOOLEAN NOT NULL DEFAULT false,
     ADD COLUMN delivered BOOLEAN NOT NULL DEFAULT false,
     ADD COLUMN redeliveries INTEGER NOT NULL DEFAULT 0;`,
  // 3: the settlement queue of settlement: deferred (deferred-rows.ts). Exposure is NUMERIC: exact.
  `CREATE TABLE deferred_settlements (
     id TEXT PRIMARY KEY,
     request_id TEXT NOT NULL,
     route TEXT NOT NULL,
     chain_id BIGINT NOT NULL,
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
     slot_nonce BIGINT,
     tx_hash TEXT NOT NULL DEFAULT '',
     reason TEXT NOT NULL DEFAULT '',
     queued_at BIGINT NOT NULL,
     finished_at BIGINT,
     seq BIGSERIAL
   );
   CREATE INDEX deferred_failures ON deferred_settlements (chain_id, payer, finished_at) WHERE state = 'failed';
   CREATE INDEX deferred_queue ON deferred_settlements (chain_id, queued_at, seq) WHERE state = 'queued';
   CREATE INDEX deferred_unsettled ON deferred_settlements (queued_at) WHERE state IN ('queued', 'batched');
   CREATE INDEX deferred_slot ON deferred_settlements (chain_id, settler, slot_nonce) WHERE state = 'batched';
   CREATE TABLE deferred_exposure (
     chain_id BIGINT NOT NULL,
     asset TEXT NOT NULL,
     payer TEXT NOT NULL,
     amount NUMERIC(78, 0) NOT NULL,
     PRIMARY KEY (chain_id, asset, payer)
   );`,
];

/** The schema version this gateway writes. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/** Creates or migrates the schema to POSTGRES_SCHEMA_VERSION; throws LedgerSchemaError on a newer one. */
export async function migratePostgres(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS x402_gateway_schema (version INTEGER NOT NULL)');
      const found = await client.query<{ version: number }>('SELECT version FROM x402_gateway_schema');
      const current = found.rows[0]?.version ?? 0;
      if (current > POSTGRES_SCHEMA_VERSION) throw new LedgerSchemaError('postgres', current, POSTGRES_SCHEMA_VERSION);
      for (let version = current; version < POSTGRES_SCHEMA_VERSION; version++) {
        await client.query('BEGIN');
        try {
          await client.query(MIGRATIONS[version] as string);
          await client.query('DELETE FROM x402_gateway_schema');
          await client.query('INSERT INTO x402_gateway_schema (version) VALUES ($1)', [version + 1]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]).catch(() => {});
    }
  } finally {
    client.release();
  }
}
