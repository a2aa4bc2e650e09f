/**
 * The SQLite ledger on a real file: writes asked for in one turn of the event loop are committed
 * together (one fsync), none resolves before it is committed, one failing write does not take the
 * others down, and closing commits what is queued. What every store must do is the `Ledger`
 * contract suite (test/contracts/ledger.contract.ts, run by sqlite-ledger.contract.test.ts).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION, SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { LedgerSchemaError } from '../../src/ledger/schema-version.js';
import { nonceKeyString, type NonceKey, type Receipt } from '../../src/payments/ports.js';
import { fixedClock } from '../helpers/clock.js';

let dir: string;
let path: string;
let ledger: SqliteLedger;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'x402-ledger-'));
  path = join(dir, 'ledger.sqlite');
  ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
});

afterEach(async () => {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

const key = (n: number): NonceKey => ({
  chainId: 8453,
  asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
  payer: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  nonce: `0x${n.toString(16).padStart(64, '0')}`,
});

const receipt = (id: string, status: Receipt['status'] = 'settled'): Receipt => ({
  time: 1_000,
  requestId: id,
  route: 'GET /x',
  method: 'GET',
  path: '/x',
  amount: '10000',
  asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
  network: 'eip155:8453',
  payer: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  nonce: '0x01',
  transaction: '0xab',
  status,
  reason: '',
});

/** What another connection to the same file sees: only committed rows. */
function committedReceipts(): string[] {
  const other = new Database(path, { readonly: true });
  try {
    return (other.prepare('SELECT request_id FROM receipts ORDER BY request_id').all() as { request_id: string }[]).map((r) => r.request_id);
  } finally {
    other.close();
  }
}

describe('SqliteLedger group commit', () => {
  it('commits the writes of one turn together, and each resolves only once committed', async () => {
    const writes = [ledger.record(receipt('a')), ledger.record(receipt('b')), ledger.record(receipt('c'))];
    expect(committedReceipts()).toEqual([]); // nothing is committed within the turn that asked
    let resolvedEarly = false;
    void writes[0]!.then(() => (resolvedEarly = committedReceipts().length < 3));
    await Promise.all(writes);
    expect(resolvedEarly).toBe(false);
    expect(committedReceipts()).toEqual(['a', 'b', 'c']);
  });

  it('answers reservations in the order asked, within one batch', async () => {
    const answers = await Promise.all([ledger.reserveNonce(key(1), 2_000), ledger.reserveNonce(key(1), 2_000), ledger.reserveNonce(key(2), 2_000)]);
    expect(answers).toEqual([true, false, true]);
  });

  it('a failing write is refused alone; the rest of its batch is committed', async () => {
    const broken = { ...receipt('bad'), route: null } as unknown as Receipt; // NOT NULL column
    const results = await Promise.allSettled([ledger.record(receipt('ok1')), ledger.record(broken), ledger.record(receipt('ok2'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(committedReceipts()).toEqual(['ok1', 'ok2']);
  });

  it('beginSettlement keeps the nonce and writes the pending row as one write', async () => {
    await ledger.reserveNonce(key(5), 2_000);
    await ledger.beginSettlement(key(5), receipt('p', 'pending'));
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT state FROM nonces').get()).toEqual({ state: 'kept' });
    expect(db.prepare('SELECT status FROM receipts').get()).toEqual({ status: 'pending' });
    db.close();
  });

  it('close commits what is still queued', async () => {
    const pending = ledger.record(receipt('last'));
    await ledger.close();
    await pending;
    expect(committedReceipts()).toEqual(['last']);
  });
});

describe('SqliteLedger payer penalties (refused after a reverted settlement)', () => {
  const PAYER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

  it('ends at its expiry (by the ledger\'s clock), survives a reopen, and expired rows are pruned', async () => {
    const clock = fixedClock(1_000);
    await ledger.close();
    ledger = new SqliteLedger(path, { clock });
    await ledger.penalisePayer(8453, PAYER, 1_500);
    await ledger.close();
    ledger = new SqliteLedger(path, { clock });
    expect(await ledger.payerPenalty(8453, PAYER)).toBe(1_500);
    clock.set(1_500);
    expect(await ledger.payerPenalty(8453, PAYER)).toBeUndefined();
    await ledger.penalisePayer(8453, '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', 5_000);
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT chain_id, payer, until FROM payer_penalties').all()).toEqual([
      { chain_id: 8453, payer: '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', until: 5_000 },
    ]);
    db.close();
  });
});

describe('SqliteLedger schema version', () => {
  it('stamps a new file and a file from before versions were kept with the version it writes', async () => {
    await ledger.close();
    const fresh = new Database(path, { readonly: true });
    expect(fresh.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    fresh.close();

    const old = new Database(path);
    old.pragma('user_version = 0');
    old.close();
    ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
    await ledger.close();
    const stamped = new Database(path, { readonly: true });
    expect(stamped.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    stamped.close();
    ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
  });

  it('upgrades a version 1 file: its kept nonces gain the re-delivery columns and stay kept', async () => {
    await ledger.close();
    rmSync(path, { force: true });
    const old = new Database(path);
    old.exec(`CREATE TABLE nonces (key TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('reserved', 'kept')), expires_at INTEGER NOT NULL)`);
    old.prepare(`INSERT INTO nonces VALUES (?, 'kept', 9999999999)`).run(nonceKeyString(key(7)));
    old.pragma('user_version = 1');
    old.close();
    ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
    expect(await ledger.reserveNonce(key(7), 2_000)).toBe(false);
    expect(await ledger.deliveryOf(key(7))).toMatchObject({ resource: '', delivered: false, redeliveries: 0 });
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    db.close();
  });

  it('upgrades a version 3 file: the hourly totals are filled from its rows, then kept by each write', async () => {
    const H = 3_600_000;
    await ledger.record(receipt('a'));
    await ledger.record(receipt('b'));
    await ledger.close();
    const old = new Database(path);
    old.exec('DROP TRIGGER receipt_hours_insert; DROP TRIGGER receipt_hours_update; DROP TRIGGER receipt_hours_delete; DROP TABLE receipt_hours');
    old.pragma('user_version = 3');
    old.close();
    ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
    const counted = async () => (await ledger.hourlyTotals(0)).reduce((n, t) => n + t.count, 0);
    expect(await counted()).toBe(2);
    await ledger.record(receipt('c'));
    expect(await counted()).toBe(3);
    expect((await ledger.hourlyTotals(0)).every((t) => t.hourStartMs % H === 0)).toBe(true);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    db.close();
  });

  it('refuses a file written by a newer gateway, naming both versions, and leaves it untouched', async () => {
    await ledger.record(receipt('kept'));
    await ledger.close();
    const newer = new Database(path);
    newer.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    newer.close();
    expect(() => new SqliteLedger(path, { clock: fixedClock(1_000) })).toThrow(LedgerSchemaError);
    expect(() => new SqliteLedger(path, { clock: fixedClock(1_000) })).toThrow(
      `the sqlite ledger has schema version ${SQLITE_SCHEMA_VERSION + 1}, newer than this gateway knows (${SQLITE_SCHEMA_VERSION})`,
    );
    expect(committedReceipts()).toEqual(['kept']);
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
    db.close();
    ledger = new SqliteLedger(path, { clock: fixedClock(1_000) });
  });
});
