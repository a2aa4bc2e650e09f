/**
 * The shared ledger: one PostgreSQL database for every replica of the gateway. The same tables
 * and the same `Ledger` contract as the embedded SQLite file (sqlite-ledger.ts), so a nonce
 * reserved or spent through one replica is refused by all of them.
 *
 * Durability (the `Ledger` contract): two pools. On the first, sessions run with
 * `synchronous_commit = off`, so a reservation, a release or a row of an outcome that moved
 * nothing is committed (visible to every replica at once) without waiting for its WAL flush. A
 * write that records money goes through the second, whose sessions keep the default
 * (`synchronous_commit = on`), so it is on the server's disk when its promise resolves; each such
 * write is one statement (several tables through data-modifying CTEs), so it is atomic without
 * BEGIN and COMMIT round trips: one round trip per write, which is most of its CPU cost.
 *
 * Time (reservation expiry, proof claims, payer penalties) is the server's clock, one for all
 * replicas, whatever their own clocks say.
 *
 * The schema is created and migrated by `migratePostgres` (postgres-schema.ts) before the first
 * query, under an advisory lock, so replicas starting together migrate once.
 */
import pg from 'pg';
import type { Address, Hex } from '../protocol/types.js';
import {
  MONEY_STATUSES,
  PRUNABLE_STATUSES,
  nonceKeyString,
  type Ledger,
  type LoggedTransaction,
  type NonceKey,
  type OpenSettlement,
  HOUR_MS,
  type PendingReceipt,
  type Receipt,
  type ReceiptTotal,
  type ReceiptQuery,
  type ReceiptStatus,
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
import { firstHourFrom, RECEIPT_COLUMNS, receiptFromRow, receiptNonceKey, receiptToRow, totalFromRow, type ReceiptRow, type TotalRow } from './receipt-rows.js';
import { entryRow, openSettlement, transactionRow, type SettlementRow, type TransactionRow } from './settlement-rows.js';
import { migratePostgres } from './postgres-schema.js';
import { deferredItemFromRow, deferredRow, deferredStatusFromRow, exposureKey, TOTAL_EXPOSURE, type DeferredRow } from './deferred-rows.js';

export interface PostgresLedgerOptions {
  /** Connections in this replica's pool. */
  readonly pool: number;
}

/** The server's unix second, as the `BIGINT` columns store it. */
const NOW = `floor(extract(epoch from clock_timestamp()))::bigint`;

/** The server's unix millisecond: when a settlement transaction was logged, when a lease ends. */
const NOW_MS = `floor(extract(epoch from clock_timestamp()) * 1000)::bigint`;

const INSERT_TRANSACTION = `INSERT INTO settlement_transactions (hash, chain_id, settler, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, ${NOW_MS})`;

function transactionParams(t: ReturnType<typeof transactionRow>): unknown[] {
  return [t.hash, t.chain_id, t.settler, t.nonce, t.raw, t.max_fee_per_gas, t.max_priority_fee_per_gas];
}

const RECORD = `INSERT INTO receipts (${RECEIPT_COLUMNS.join(', ')})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
  ON CONFLICT (request_id) DO UPDATE SET time = excluded.time, status = excluded.status, reason = excluded.reason,
    tx_hash = excluded.tx_hash, payer = excluded.payer
  WHERE receipts.status NOT IN ('settled', 'settle_failed')`;

function recordParams(r: Receipt): unknown[] {
  const row = receiptToRow(r);
  return RECEIPT_COLUMNS.map((column) => row[column]);
}


/** A pool of `max` connections to `url`; `options`: session settings. */
function openPool(url: string, max: number, options: string | undefined): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    ...(options === undefined ? {} : { options }),
    connectionTimeoutMillis: 5_000,
    // A query the server does not answer fails instead of holding a paid request for ever.
    query_timeout: 10_000,
  });
  // A connection that dies while idle is dropped from the pool, which opens a new one for the
  // next query (a failed query's connection is destroyed, not reused); without a listener, the
  // pool's 'error' event would end the process.
  pool.on('error', () => {});
  return pool;
}

/** The `Ledger` in a PostgreSQL database. Open with `PostgresLedger.open`. */
export class PostgresLedger implements Ledger {
  /** Commits without waiting for the WAL flush: writes that record no money, and reads. */
  readonly #pool: pg.Pool;
  /** Commits on disk: writes that record money. */
  readonly #durable: pg.Pool;
  /** Operations asked for and not yet settled: close waits for them, so none is cut off. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(pool: pg.Pool, durable: pg.Pool) {
    this.#pool = pool;
    this.#durable = durable;
  }

  /**
   * Connects, migrates the schema (or refuses a newer one) and returns the ledger. The `pool`
   * connections are shared between the two pools (each gets at least one).
   */
  static async open(url: string, options: PostgresLedgerOptions): Promise<PostgresLedger> {
    const durableConnections = Math.max(1, Math.floor(options.pool / 2));
    const pool = openPool(url, Math.max(1, options.pool - durableConnections), '-c synchronous_commit=off');
    const durable = openPool(url, durableConnections, undefined);
    try {
      await migratePostgres(durable);
    } catch (err) {
      await Promise.all([pool.end(), durable.end()]);
      throw err;
    }
    return new PostgresLedger(pool, durable);
  }

  reserveNonce(key: NonceKey, expiresAtSeconds: number): Promise<boolean> {
    return this.#run(async () => {
      // A reservation whose authorization has expired can be taken again: the chain refuses it anyway.
      const result = await this.#pool.query(
        `INSERT INTO nonces (key, state, expires_at) VALUES ($1, 'reserved', $2)
         ON CONFLICT (key) DO UPDATE SET state = 'reserved', expires_at = excluded.expires_at
         WHERE nonces.state = 'reserved' AND nonces.expires_at < ${NOW}`,
        [nonceKeyString(key), expiresAtSeconds],
      );
      return result.rowCount === 1;
    });
  }

  releaseNonce(key: NonceKey): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query(`DELETE FROM nonces WHERE key = $1`, [nonceKeyString(key)]);
    });
  }

  beginSettlement(key: NonceKey, pending: Receipt, terms?: DeliveryTerms): Promise<void> {
    return this.#run(async () => {
      // One statement: the nonce kept and the pending row land together or not at all.
      await this.#durable.query(
        `WITH kept AS (UPDATE nonces SET state = 'kept', resource = $14, signature = $15, request_id = $1 WHERE key = $16) ${RECORD}`,
        [...recordParams(pending), terms?.resource ?? '', terms?.signature ?? '', nonceKeyString(key)],
      );
    });
  }

  claimProof(chainId: number, txHash: Hex): Promise<boolean> {
    return this.#run(async () => {
      const result = await this.#durable.query(`INSERT INTO proofs (chain_id, tx_hash, claimed_at) VALUES ($1, $2, ${NOW}) ON CONFLICT DO NOTHING`, [
        chainId,
        txHash.toLowerCase(),
      ]);
      return result.rowCount === 1;
    });
  }

  penalisePayer(chainId: number, payer: Hex, untilSeconds: number): Promise<void> {
    return this.#run(async () => {
      // Expired refusals are dropped whenever one is added, so the table holds only live ones.
      await this.#pool.query(`DELETE FROM payer_penalties WHERE until <= ${NOW}`);
      await this.#pool.query(
        `INSERT INTO payer_penalties (chain_id, payer, until) VALUES ($1, $2, $3)
         ON CONFLICT (chain_id, payer) DO UPDATE SET until = GREATEST(payer_penalties.until, excluded.until)`,
        [chainId, payer.toLowerCase(), untilSeconds],
      );
    });
  }

  payerPenalty(chainId: number, payer: Hex): Promise<number | undefined> {
    return this.#run(async () => {
      const result = await this.#pool.query<{ until: string }>(
        `SELECT until FROM payer_penalties WHERE chain_id = $1 AND payer = $2 AND until > ${NOW}`,
        [chainId, payer.toLowerCase()],
      );
      const until = result.rows[0]?.until;
      return until === undefined ? undefined : Number(until);
    });
  }

  record(receipt: Receipt): Promise<boolean> {
    return this.#run(async () => {
      const result = await (MONEY_STATUSES.has(receipt.status) ? this.#durable : this.#pool).query(RECORD, recordParams(receipt));
      return (result.rowCount ?? 0) > 0;
    });
  }

  receipts(query: ReceiptQuery): Promise<Receipt[]> {
    return this.#run(async () => {
      const result = await this.#pool.query<ReceiptRow>(
        `SELECT * FROM receipts WHERE time >= $1 AND ($3::text IS NULL OR status = $3) ORDER BY time DESC, seq DESC LIMIT $2`,
        [query.since ?? 0, query.limit ?? 1000, query.status ?? null],
      );
      return result.rows.map(receiptFromRow);
    });
  }

  hourlyTotals(sinceMs: number): Promise<ReceiptTotal[]> {
    return this.#run(async () => {
      // NUMERIC sums exactly; rows without an amount ('') count 0. A grouped scan of the window's
      // rows, on the server: unlike SQLite's, it does not hold up this process's event loop, and a
      // counter row per hour would be a lock every replica's writes queue on.
      const result = await this.#pool.query<TotalRow>(
        `SELECT (time / ${HOUR_MS}) * ${HOUR_MS} AS hour, route, network, asset, status, count(*) AS count, coalesce(sum(NULLIF(amount, '')::numeric), 0)::text AS atomic
         FROM receipts WHERE time >= $1 GROUP BY 1, 2, 3, 4, 5`,
        [firstHourFrom(sinceMs)],
      );
      return result.rows.map(totalFromRow);
    });
  }

  deliveryOf(key: NonceKey): Promise<Delivery | undefined> {
    return this.#run(async () => {
      const result = await this.#pool.query<DeliveryRow>(
        `SELECT n.resource, n.signature, n.request_id, n.ended, n.delivered, n.redeliveries, r.status, r.tx_hash, r.payer, r.reason
         FROM nonces n LEFT JOIN receipts r ON r.request_id = n.request_id WHERE n.key = $1 AND n.state = 'kept'`,
        [nonceKeyString(key)],
      );
      const row = result.rows[0];
      return row === undefined ? undefined : deliveryFromRow(row);
    });
  }

  claimRedelivery(key: NonceKey, max: number): Promise<boolean> {
    return this.#run(async () => {
      const result = await this.#pool.query(
        `UPDATE nonces SET redeliveries = redeliveries + 1 WHERE key = $1 AND state = 'kept' AND NOT delivered AND redeliveries < $2`,
        [nonceKeyString(key), max],
      );
      return result.rowCount === 1;
    });
  }

  answerEnded(key: NonceKey, delivered: boolean): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query(`UPDATE nonces SET ended = true, delivered = delivered OR $2 WHERE key = $1 AND state = 'kept'`, [nonceKeyString(key), delivered]);
    });
  }

  takeNonce(chainId: number, settler: Address): Promise<number | undefined> {
    return this.#run(async () => {
      const result = await this.#pool.query<{ nonce: string }>(
        `UPDATE settler_nonces SET next_nonce = next_nonce + 1 WHERE chain_id = $1 AND settler = $2 RETURNING next_nonce - 1 AS nonce`,
        [chainId, settler.toLowerCase()],
      );
      const nonce = result.rows[0]?.nonce;
      return nonce === undefined ? undefined : Number(nonce);
    });
  }

  raiseNonceFloor(chainId: number, settler: Address, next: number): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query(
        `INSERT INTO settler_nonces (chain_id, settler, next_nonce) VALUES ($1, $2, $3)
         ON CONFLICT (chain_id, settler) DO UPDATE SET next_nonce = GREATEST(settler_nonces.next_nonce, excluded.next_nonce)`,
        [chainId, settler.toLowerCase(), next],
      );
    });
  }

  returnNonce(slot: SettlementSlot): Promise<boolean> {
    return this.#run(async () => {
      const result = await this.#pool.query(
        `UPDATE settler_nonces SET next_nonce = next_nonce - 1 WHERE chain_id = $1 AND settler = $2 AND next_nonce = $3 + 1`,
        [slot.chainId, slot.settler.toLowerCase(), slot.nonce],
      );
      return result.rowCount === 1;
    });
  }

  logSettlement(entry: SettlementEntry, transaction: LoggedTransaction): Promise<void> {
    return this.#run(async () => {
      const e = entryRow(entry);
      const t = transactionRow(entry, transaction);
      // One statement: the entry, its transaction and the hash on its rows, or none of them.
      await this.#durable.query(
        `WITH entry AS (
           INSERT INTO settlements (chain_id, settler, nonce, state, request_ids, asset, payer, pay_to, amount, authorization_nonce, valid_before, created_at)
           VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, ${NOW_MS})
         ), tx AS (
           INSERT INTO settlement_transactions (hash, chain_id, settler, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at)
           VALUES ($11, $1, $2, $3, $12, $13, $14, ${NOW_MS})
         )
         UPDATE receipts SET tx_hash = $11 WHERE request_id = ANY($15) AND status = 'pending'`,
        [e.chain_id, e.settler, e.nonce, e.request_ids, e.asset, e.payer, e.pay_to, e.amount, e.authorization_nonce, e.valid_before, t.hash, t.raw, t.max_fee_per_gas, t.max_priority_fee_per_gas, entry.requestIds],
      );
    });
  }

  logReplacement(slot: SettlementSlot, transaction: LoggedTransaction): Promise<void> {
    return this.#run(async () => {
      await this.#durable.query(
        `WITH tx AS (${INSERT_TRANSACTION})
         UPDATE settlements SET state = 'open' WHERE chain_id = $2 AND settler = $3 AND nonce = $4 AND state = 'void'`,
        transactionParams(transactionRow(slot, transaction)),
      );
    });
  }

  voidSettlement(slot: SettlementSlot): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query(`UPDATE settlements SET state = 'void' WHERE chain_id = $1 AND settler = $2 AND nonce = $3 AND state <> 'done'`, [
        slot.chainId,
        slot.settler.toLowerCase(),
        slot.nonce,
      ]);
    });
  }

  closeSettlement(slot: SettlementSlot, outcome?: SettlementOutcome): Promise<readonly string[]> {
    return this.#run(async () => {
      const params = [slot.chainId, slot.settler.toLowerCase(), slot.nonce];
      const close = `UPDATE settlements SET state = 'done' WHERE chain_id = $1 AND settler = $2 AND nonce = $3 RETURNING request_ids`;
      if (outcome === undefined) {
        await this.#pool.query(close, params);
        return [];
      }
      const written = await this.#durable.query<{ request_id: string }>(
        `WITH closed AS (${close})
         UPDATE receipts SET status = $4, tx_hash = $5, reason = $6, time = ${NOW_MS}
         WHERE request_id IN (SELECT jsonb_array_elements_text(request_ids::jsonb) FROM closed) AND status = 'pending'
         RETURNING request_id`,
        [...params, outcome.status, outcome.transaction, outcome.reason],
      );
      return written.rows.map((row) => row.request_id);
    });
  }

  openSettlements(chainId: number, settler: Address, limit: number): Promise<OpenSettlement[]> {
    return this.#run(async () => {
      const entries = await this.#pool.query<SettlementRow>(
        `SELECT * FROM settlements WHERE chain_id = $1 AND settler = $2 AND state <> 'done' ORDER BY nonce LIMIT $3`,
        [chainId, settler.toLowerCase(), limit],
      );
      if (entries.rows.length === 0) return [];
      const nonces = entries.rows.map((row) => row.nonce);
      const transactions = await this.#pool.query<TransactionRow & { nonce: string }>(
        `SELECT * FROM settlement_transactions WHERE chain_id = $1 AND settler = $2 AND nonce = ANY($3) ORDER BY sent_at, hash`,
        [chainId, settler.toLowerCase(), nonces],
      );
      const ids = entries.rows.flatMap((row) => JSON.parse(row.request_ids) as string[]);
      const rows = await this.#pool.query<{ request_id: string; status: ReceiptStatus; route: string }>(
        `SELECT request_id, status, route FROM receipts WHERE request_id = ANY($1)`,
        [ids],
      );
      const rowById = new Map(rows.rows.map((r) => [r.request_id, r]));
      return entries.rows.map((row) =>
        openSettlement(
          row,
          transactions.rows.filter((t) => t.nonce === String(row.nonce)),
          (id) => rowById.get(id),
        ),
      );
    });
  }

  enqueueDeferred(key: NonceKey, receipt: Receipt, item: DeferredItem, caps: ExposureCaps, terms?: DeliveryTerms): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (client) => {
        const row = deferredRow(item);
        const amount = item.authorization.value;
        if (amount > caps.perPayer || amount > caps.total) return false;
        // The payer's row before the total's, as finishDeferred takes them: no lock cycle.
        for (const [payer, cap] of [[row.payer, caps.perPayer], [TOTAL_EXPOSURE, caps.total]] as const) {
          const added = await client.query(
            `INSERT INTO deferred_exposure (chain_id, asset, payer, amount) VALUES ($1, $2, $3, $4)
             ON CONFLICT (chain_id, asset, payer) DO UPDATE SET amount = deferred_exposure.amount + excluded.amount
             WHERE deferred_exposure.amount + excluded.amount <= $5`,
            [row.chain_id, row.asset, payer, amount.toString(), cap.toString()],
          );
          if (added.rowCount !== 1) return false;
        }
        await client.query(
          `WITH kept AS (UPDATE nonces SET state = 'kept', resource = $14, signature = $15, request_id = $1 WHERE key = $16),
           item AS (
             INSERT INTO deferred_settlements (id, request_id, route, chain_id, asset, payer, pay_to, amount, valid_after, valid_before, authorization_nonce, signature, state, queued_at)
             VALUES ($17, $1, $28, $18, $19, $20, $21, $22, $23, $24, $25, $26, 'queued', $27)
           ) ${RECORD}`,
          [
            ...recordParams(receipt),
            terms?.resource ?? '',
            terms?.signature ?? '',
            nonceKeyString(key),
            row.id,
            row.chain_id,
            row.asset,
            row.payer,
            row.pay_to,
            row.amount,
            row.valid_after,
            row.valid_before,
            row.authorization_nonce,
            row.signature,
            row.queued_at,
            row.route,
          ],
        );
        return true;
      }),
    );
  }

  queuedDeferred(chainId: number, limit: number): Promise<DeferredItem[]> {
    return this.#run(async () => {
      const result = await this.#pool.query<DeferredRow>(
        `SELECT * FROM deferred_settlements WHERE chain_id = $1 AND state = 'queued' ORDER BY queued_at, seq LIMIT $2`,
        [chainId, limit],
      );
      return result.rows.map(deferredItemFromRow);
    });
  }

  logBatch(entry: SettlementEntry, transaction: LoggedTransaction, itemIds: readonly string[]): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (client) => {
        const e = entryRow(entry);
        const t = transactionRow(entry, transaction);
        // The items first, row-locked: if another batcher took any, roll back, nothing logged.
        const batched = await client.query(
          `UPDATE deferred_settlements SET state = 'batched', settler = $1, slot_nonce = $2, tx_hash = $3 WHERE id = ANY($4) AND state = 'queued'`,
          [e.settler, e.nonce, t.hash, itemIds],
        );
        if (batched.rowCount !== itemIds.length) return false;
        await client.query(
          `WITH entry AS (
             INSERT INTO settlements (chain_id, settler, nonce, state, request_ids, asset, payer, pay_to, amount, authorization_nonce, valid_before, created_at)
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, ${NOW_MS})
           )
           INSERT INTO settlement_transactions (hash, chain_id, settler, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at)
           VALUES ($11, $1, $2, $3, $12, $13, $14, ${NOW_MS})`,
          [e.chain_id, e.settler, e.nonce, e.request_ids, e.asset, e.payer, e.pay_to, e.amount, e.authorization_nonce, e.valid_before, t.hash, t.raw, t.max_fee_per_gas, t.max_priority_fee_per_gas],
        );
        return true;
      }),
    );
  }

  batchItems(slot: SettlementSlot): Promise<DeferredItem[]> {
    return this.#run(async () => {
      const result = await this.#pool.query<DeferredRow>(
        `SELECT * FROM deferred_settlements WHERE chain_id = $1 AND settler = $2 AND slot_nonce = $3 AND state = 'batched' ORDER BY seq`,
        [slot.chainId, slot.settler.toLowerCase(), slot.nonce],
      );
      return result.rows.map(deferredItemFromRow);
    });
  }

  finishDeferred(outcomes: readonly DeferredOutcome[]): Promise<readonly string[]> {
    if (outcomes.length === 0) return Promise.resolve([]);
    return this.#run(() =>
      this.#transaction(async (client) => {
        const finished = await client.query<DeferredRow>(
          `UPDATE deferred_settlements d SET state = o.state, tx_hash = o.tx, reason = o.reason, finished_at = ${NOW_MS}
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS o(id, state, tx, reason)
           WHERE d.id = o.id AND d.state IN ('queued', 'batched')
           RETURNING d.*`,
          [outcomes.map((o) => o.id), outcomes.map((o) => o.state), outcomes.map((o) => o.transaction), outcomes.map((o) => o.reason)],
        );
        // Payers' rows first, in one order, then the totals: as enqueueDeferred takes them.
        const owed = new Map<string, { chainId: number | string; asset: string; payer: string; amount: bigint }>();
        for (const row of finished.rows) {
          for (const payer of [row.payer, TOTAL_EXPOSURE]) {
            const key = `${payer === TOTAL_EXPOSURE ? 1 : 0}:${row.chain_id}:${row.asset}:${payer}`;
            const entry = owed.get(key) ?? { chainId: row.chain_id, asset: row.asset, payer, amount: 0n };
            owed.set(key, { ...entry, amount: entry.amount + BigInt(row.amount) });
          }
        }
        for (const key of [...owed.keys()].sort()) {
          const { chainId, asset, payer, amount } = owed.get(key)!;
          await client.query(`UPDATE deferred_exposure SET amount = amount - $4 WHERE chain_id = $1 AND asset = $2 AND payer = $3`, [chainId, asset, payer, amount.toString()]);
        }
        const statusOf = (row: DeferredRow) => (row.state === 'settled' ? 'settled' : 'settle_failed');
        const written = await client.query<{ request_id: string }>(
          `UPDATE receipts r SET status = o.status, tx_hash = o.tx, reason = o.reason, time = ${NOW_MS}
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS o(request_id, status, tx, reason)
           WHERE r.request_id = o.request_id AND r.status = 'queued'
           RETURNING r.request_id`,
          [finished.rows.map((r) => r.request_id), finished.rows.map(statusOf), finished.rows.map((r) => r.tx_hash), finished.rows.map((r) => r.reason)],
        );
        return written.rows.map((row) => row.request_id);
      }),
    );
  }

  requeueBatch(slot: SettlementSlot): Promise<number> {
    return this.#run(async () => {
      const result = await this.#durable.query(
        `UPDATE deferred_settlements SET state = 'queued', settler = '', slot_nonce = NULL, tx_hash = ''
         WHERE chain_id = $1 AND settler = $2 AND slot_nonce = $3 AND state = 'batched'`,
        [slot.chainId, slot.settler.toLowerCase(), slot.nonce],
      );
      return result.rowCount ?? 0;
    });
  }

  lastDeferredFailure(chainId: number, payer: Address): Promise<number | undefined> {
    return this.#run(async () => {
      const result = await this.#pool.query<{ at: string | null }>(
        `SELECT max(finished_at) AS at FROM deferred_settlements WHERE chain_id = $1 AND payer = $2 AND state = 'failed'`,
        [chainId, payer.toLowerCase()],
      );
      const at = result.rows[0]?.at;
      return at == null ? undefined : Number(at);
    });
  }

  deferredStatus(id: string): Promise<DeferredStatus | undefined> {
    return this.#run(async () => {
      const result = await this.#pool.query<DeferredRow>(`SELECT * FROM deferred_settlements WHERE id = $1`, [id]);
      const row = result.rows[0];
      return row === undefined ? undefined : deferredStatusFromRow(row);
    });
  }

  queueStats(): Promise<QueueStats> {
    return this.#run(async () => {
      const totals = await this.#pool.query<{ chain_id: string; asset: string; amount: string }>(
        `SELECT chain_id, asset, amount::text AS amount FROM deferred_exposure WHERE payer = $1`,
        [TOTAL_EXPOSURE],
      );
      const unsettled = await this.#pool.query<{ count: string; oldest: string | null }>(
        `SELECT count(*) AS count, min(queued_at) AS oldest FROM deferred_settlements WHERE state IN ('queued', 'batched')`,
      );
      const row = unsettled.rows[0];
      return {
        count: Number(row?.count ?? 0),
        amounts: new Map(totals.rows.map((t) => [exposureKey(t.chain_id, t.asset), BigInt(t.amount)])),
        oldestQueuedAtMs: row?.oldest == null ? undefined : Number(row.oldest),
      };
    });
  }

  /** Runs `work` in one transaction on a durable connection: committed on disk, or rolled back when it returns false or throws. */
  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#durable.connect();
    try {
      await client.query('BEGIN');
      let result: T;
      try {
        result = await work(client);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
      await client.query(result === false ? 'ROLLBACK' : 'COMMIT');
      return result;
    } finally {
      client.release();
    }
  }

  holdLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.#run(async () => {
      const result = await this.#pool.query(
        `INSERT INTO leases (name, holder, until) VALUES ($1, $2, ${NOW_MS} + $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until <= ${NOW_MS}
         RETURNING holder`,
        [name, holder, ttlMs],
      );
      return result.rowCount === 1;
    });
  }

  prune(olderThanMs: number, limit: number): Promise<number> {
    return this.#run(async () => {
      const receipts = await this.#pool.query(
        `DELETE FROM receipts WHERE seq IN (SELECT seq FROM receipts WHERE time < $1 AND status = ANY($2) LIMIT $3)`,
        [olderThanMs, PRUNABLE_STATUSES, limit],
      );
      const reservations = await this.#pool.query(
        `DELETE FROM nonces WHERE key IN (SELECT key FROM nonces WHERE state = 'reserved' AND expires_at < ${NOW} LIMIT $1)`,
        [limit],
      );
      return (receipts.rowCount ?? 0) + (reservations.rowCount ?? 0);
    });
  }

  pendingReceipts(): Promise<{ count: number; oldestTimeMs: number | undefined }> {
    return this.#run(async () => {
      const result = await this.#pool.query<{ count: string; oldest: string | null }>(
        `SELECT count(*) AS count, min(time) AS oldest FROM receipts WHERE status = 'pending'`,
      );
      const row = result.rows[0];
      return { count: Number(row?.count ?? 0), oldestTimeMs: row?.oldest == null ? undefined : Number(row.oldest) };
    });
  }

  pendingRows(network: string, olderThanMs: number, limit: number): Promise<PendingReceipt[]> {
    return this.#run(async () => {
      const rows = await this.#pool.query<ReceiptRow>(`SELECT * FROM receipts WHERE status = 'pending' AND network = $1 AND time < $2 ORDER BY time LIMIT $3`, [
        network,
        olderThanMs,
        limit,
      ]);
      const receipts = rows.rows.map(receiptFromRow).map((receipt) => ({ receipt, key: receiptNonceKey(receipt) }));
      const keys = receipts.flatMap((r) => (r.key === undefined ? [] : [r.key]));
      const kept = keys.length === 0 ? [] : (await this.#pool.query<{ key: string; expires_at: string }>(`SELECT key, expires_at FROM nonces WHERE key = ANY($1) AND state = 'kept'`, [keys])).rows;
      const expiry = new Map(kept.map((k) => [k.key, Number(k.expires_at)]));
      return receipts.map(({ receipt, key }) => ({ ...receipt, validBeforeSeconds: key === undefined ? undefined : expiry.get(key) }));
    });
  }

  ping(): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query('SELECT 1');
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    await Promise.all([this.#pool.end(), this.#durable.end()]);
  }

  /** Runs one operation of the port, refused once the ledger is closed, awaited by close. */
  #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('ledger closed'));
    const running = operation();
    this.#inFlight.add(running);
    const forget = (): void => {
      this.#inFlight.delete(running);
    };
    running.then(forget, forget);
    return running;
  }
}
