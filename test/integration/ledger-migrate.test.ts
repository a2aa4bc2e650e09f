/**
 * `x402-gateway ledger migrate`: a SQLite file written by the embedded ledger, copied into a real
 * PostgreSQL server, then read back through PostgresLedger: what the old process refused, the
 * new store refuses; what it only reserved, the new store lets through; a second run changes
 * nothing; a refused or failed run leaves PostgreSQL as it was.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import { receiptRow } from '../contracts/ledger.contract.js';
import type { DeferredItem, LoggedTransaction, NonceKey, OpenSettlement, Receipt, SettlementEntry } from '../../src/payments/ports.js';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { SQLITE_SCHEMA_VERSION, SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { gatewayYamlHead, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { querySql, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';
const ASSET = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
const PAYER = '0x2222222222222222222222222222222222222222';
const OTHER_PAYER = '0x3333333333333333333333333333333333333333';
/** Receipts past two 500-row INSERTs, all in one millisecond, so only insertion order tells them apart. */
const BULK_RECEIPTS = 1_203;

let server: TestPostgres;
const dir = mkdtempSync(join(tmpdir(), 'x402-migrate-'));
let files = 0;

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.destroy();
});

function io(env: Record<string, string> = {}): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { env, out: (l) => stdout.push(l), err: (l) => stderr.push(l), onSignal: () => {}, stdout, stderr };
}

function configFile(ledger: string): string {
  const path = join(dir, `gateway-${++files}.yaml`);
  writeFileSync(
    path,
    `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
ledger: ${ledger}
`,
  );
  return path;
}
const postgresConfig = (): string => configFile('{ store: postgres, url: "${DATABASE_URL}", pool: 2 }');


/** Every row of the copied tables, `seq` included: what "changes nothing" compares. */
async function dump(url: string): Promise<Record<string, unknown[]>> {
  return {
    receipts: await querySql(url, 'SELECT * FROM receipts ORDER BY seq'),
    nonces: await querySql(url, 'SELECT * FROM nonces ORDER BY key'),
    proofs: await querySql(url, 'SELECT * FROM proofs ORDER BY chain_id, tx_hash'),
    penalties: await querySql(url, 'SELECT * FROM payer_penalties ORDER BY chain_id, payer'),
  };
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const SETTLER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266' as const;
const settlement = (nonce: number, requestIds: string[]): SettlementEntry => ({
  chainId: 8453,
  settler: SETTLER,
  nonce,
  requestIds,
  asset: ASSET,
  payer: PAYER,
  payTo: SETTLER,
  amount: '10000',
  authorizationNonce: nonceKey(1).nonce,
  validBefore: nowSeconds() + 600,
});
const loggedTransaction = (n: number): LoggedTransaction => ({ hash: `0x${n.toString(16).padStart(64, 'e')}`, raw: '0x02', maxFeePerGas: '2000', maxPriorityFeePerGas: '100' });
const COPIED_LOG = '1 settler nonce count, 1 unfinished settlement, 1 settlement transaction, 1 unsettled deferred payment';
const NONE_OF_LOG = '0 settler nonce counts, 0 unfinished settlements, 0 settlement transactions, 0 unsettled deferred payments';
/** A deferred payment `n` of PAYER, served and queued (settlement: deferred). */
const deferred = (n: number, requestId: string): DeferredItem => ({
  id: `deferred-${n}`.padEnd(22, 'x'),
  requestId,
  route: 'GET /cheap',
  chainId: 8453,
  asset: ASSET,
  authorization: { from: PAYER, to: SETTLER, value: 1_000n, validAfter: 0n, validBefore: BigInt(nowSeconds() + 3_600), nonce: nonceKey(n).nonce },
  signature: `0x${'12'.repeat(65)}`,
  queuedAtMs: 1_767_225_600_000 + n,
});
const CAPS = { perPayer: 1_000_000n, total: 1_000_000n };
const nonceKey = (n: number): NonceKey => ({ chainId: 8453, asset: ASSET, payer: PAYER, nonce: `0x${n.toString(16).padStart(64, '0')}` });
const TX = `0x${'cd'.repeat(32)}` as const;

function receipt(requestId: string, status: Receipt['status'], fields: Partial<Receipt> = {}): Receipt {
  return receiptRow(requestId, { time: 1_767_225_600_000, route: 'GET /weather', path: '/weather', payer: PAYER, nonce: nonceKey(1).nonce, transaction: '', status, ...fields });
}

/**
 * A ledger file as the embedded store leaves it: a kept nonce with its pending receipt, a nonce
 * only reserved, settled and refused rows, a spent proof, a penalised payer, and a bulk of rows.
 */
async function writeSqliteLedger(): Promise<{ path: string; receipts: Receipt[]; until: number; open: OpenSettlement[] }> {
  const path = join(dir, `ledger-${++files}.db`);
  const ledger = new SqliteLedger(path);
  const until = nowSeconds() + 3_600;
  try {
    expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + 600)).toBe(true);
    await ledger.beginSettlement(nonceKey(1), receipt('r-pending', 'pending', { time: 1_767_225_600_001 }));
    // Its settlement transaction, logged and not yet mined; and an earlier one already finished.
    await ledger.raiseNonceFloor(8453, SETTLER, 40);
    const [finished, unfinished] = [await ledger.takeNonce(8453, SETTLER), await ledger.takeNonce(8453, SETTLER)];
    await ledger.logSettlement(settlement(finished ?? 0, []), loggedTransaction(1));
    await ledger.closeSettlement({ chainId: 8453, settler: SETTLER, nonce: finished ?? 0 });
    await ledger.logSettlement(settlement(unfinished ?? 0, ['r-pending']), loggedTransaction(2));
    expect(await ledger.reserveNonce(nonceKey(2), nowSeconds() + 600)).toBe(true);
    await ledger.record(receipt('r-settled', 'settled', { time: 1_767_225_600_002, transaction: TX }));
    await ledger.record(receipt('r-refused', 'refused', { time: 1_767_225_600_003, reason: 'invalid_exact_evm_payload_signature' }));
    expect(await ledger.claimProof(8453, TX)).toBe(true);
    await ledger.penalisePayer(8453, PAYER, until);
    await Promise.all(Array.from({ length: BULK_RECEIPTS }, (_, i) => ledger.record(receipt(`bulk-${i}`, 'not_charged'))));
    // Deferred payments: one still owed (copied), one settled already (history, left behind).
    for (const n of [3, 4]) expect(await ledger.reserveNonce(nonceKey(n), nowSeconds() + 600)).toBe(true);
    await ledger.enqueueDeferred(nonceKey(3), receipt('r-queued', 'queued', { time: 1_767_225_600_004, nonce: nonceKey(3).nonce }), deferred(3, 'r-queued'), CAPS);
    await ledger.enqueueDeferred(nonceKey(4), receipt('r-done', 'queued', { time: 1_767_225_600_005, nonce: nonceKey(4).nonce }), deferred(4, 'r-done'), CAPS);
    await ledger.finishDeferred([{ id: deferred(4, 'r-done').id, state: 'settled', transaction: TX, reason: '' }]);
    return { path, receipts: await ledger.receipts({ limit: 10_000 }), until, open: await ledger.openSettlements(8453, SETTLER, 10) };
  } finally {
    await ledger.close();
  }
}

describe('x402-gateway ledger migrate', () => {
  it('copies receipts (in order), kept nonces, proofs and penalties; leaves reservations; a second run changes nothing', async () => {
    const url = await server.newDatabase();
    const env = { DATABASE_URL: url };
    const config = postgresConfig();
    const source = await writeSqliteLedger();
    expect(source.receipts).toHaveLength(BULK_RECEIPTS + 5);

    const first = io(env);
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', config], first)).toBe(0);
    expect(first.stderr).toEqual([]);
    expect(first.stdout).toEqual([
      `copied ${BULK_RECEIPTS + 5} receipts, 3 kept nonces, 1 proof, 1 payer penalty, ${COPIED_LOG} from ${source.path} ` +
        `(already present: 0 receipts, 0 kept nonces, 0 proofs, 0 payer penalties, ${NONE_OF_LOG})`,
    ]);

    const ledger = await PostgresLedger.open(url, { pool: 1 });
    try {
      expect(await ledger.receipts({ limit: 10_000 })).toEqual(source.receipts);
      expect(await ledger.openSettlements(8453, SETTLER, 10)).toEqual(source.open);
      expect(source.open).toHaveLength(1);
      expect(await ledger.payerPenalty(8453, PAYER)).toBe(source.until);
      expect(await ledger.payerPenalty(8453, OTHER_PAYER)).toBeUndefined();
      // The owed deferred payment, for a batcher to settle, and its exposure counted once.
      expect((await ledger.queuedDeferred(8453, 10)).map((item) => item.requestId)).toEqual(['r-queued']);
      expect((await ledger.queueStats()).amounts.get(`8453:${ASSET.toLowerCase()}`)).toBe(1_000n);
    } finally {
      await ledger.close();
    }
    const copied = await dump(url);

    const second = io(env);
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', config], second)).toBe(0);
    expect(second.stdout).toEqual([
      `copied 0 receipts, 0 kept nonces, 0 proofs, 0 payer penalties, ${NONE_OF_LOG} from ${source.path} ` +
        `(already present: ${BULK_RECEIPTS + 5} receipts, 3 kept nonces, 1 proof, 1 payer penalty, ${COPIED_LOG})`,
    ]);
    expect(await dump(url)).toEqual(copied);

    // Last, as these write: the kept nonce and the proof are spent; the reservation was not copied.
    const after = await PostgresLedger.open(url, { pool: 1 });
    try {
      expect(await after.reserveNonce(nonceKey(1), nowSeconds() + 600)).toBe(false);
      expect(await after.reserveNonce(nonceKey(2), nowSeconds() + 600)).toBe(true);
      expect(await after.claimProof(8453, TX)).toBe(false);
      // The settling key counts on from where the embedded store left it.
      expect(await after.takeNonce(8453, SETTLER)).toBe(42);
    } finally {
      await after.close();
    }
  });

  it('rows PostgreSQL already has win, but a nonce kept in SQLite is kept, and a penalty keeps the later expiry', async () => {
    const url = await server.newDatabase();
    const source = await writeSqliteLedger();
    const existing = await PostgresLedger.open(url, { pool: 1 });
    try {
      await existing.record(receipt('r-pending', 'settled', { time: 1_767_225_600_001, transaction: TX }));
      expect(await existing.reserveNonce(nonceKey(1), nowSeconds() + 600)).toBe(true);
      await existing.penalisePayer(8453, PAYER, source.until + 60);
    } finally {
      await existing.close();
    }

    const out = io({ DATABASE_URL: url });
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', postgresConfig()], out)).toBe(0);
    expect(out.stdout).toEqual([
      `copied ${BULK_RECEIPTS + 4} receipts, 3 kept nonces, 1 proof, 0 payer penalties, ${COPIED_LOG} from ${source.path} ` +
        `(already present: 1 receipt, 0 kept nonces, 0 proofs, 1 payer penalty, ${NONE_OF_LOG})`,
    ]);

    const ledger = await PostgresLedger.open(url, { pool: 1 });
    try {
      const rows = await ledger.receipts({ limit: 10_000 });
      expect(rows.find((r) => r.requestId === 'r-pending')?.status).toBe('settled');
      expect(await ledger.payerPenalty(8453, PAYER)).toBe(source.until + 60);
      expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + 600)).toBe(false);
    } finally {
      await ledger.close();
    }
  });

  it('refuses a config whose ledger is not postgres, and a missing --from, with exit 2 and one reason', async () => {
    const source = await writeSqliteLedger();
    const sqliteConfig = configFile(`{ path: "${join(dir, 'other.db')}" }`);
    const wrongStore = io();
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', sqliteConfig], wrongStore)).toBe(2);
    expect(wrongStore.stderr).toEqual([
      `x402-gateway ledger migrate: ${sqliteConfig} names a sqlite ledger; the target must be ledger: { store: postgres, url, pool }`,
    ]);

    const noFrom = io({ DATABASE_URL: 'postgres://u:p@127.0.0.1:1/none' });
    expect(await runCli(['ledger', 'migrate', '--config', postgresConfig()], noFrom)).toBe(2);
    expect(noFrom.stderr.join('\n')).toMatch(/^x402-gateway ledger migrate: no SQLite file to copy from: pass --from FILE\n\nUsage: x402-gateway ledger migrate /);

    const noSubcommand = io();
    expect(await runCli(['ledger'], noSubcommand)).toBe(2);
    expect(noSubcommand.stderr.join('\n')).toContain('Usage: x402-gateway ledger migrate');
    const help = io();
    expect(await runCli(['ledger', 'migrate', '--help'], help)).toBe(0);
    expect(help.stdout.join('\n')).toMatch(/^Usage: x402-gateway ledger migrate --from SQLITE_FILE --config FILE/);
    const usage = io();
    await runCli(['--help'], usage);
    expect(usage.stdout.join('\n')).toMatch(/^ {2}ledger migrate {2}Copy a SQLite ledger file into the PostgreSQL store/m);
  });

  it('a --from file that does not exist: exit 1, one line, and PostgreSQL untouched', async () => {
    const url = await server.newDatabase();
    const missing = join(dir, 'absent.db');
    const out = io({ DATABASE_URL: url });
    expect(await runCli(['ledger', 'migrate', '--from', missing, '--config', postgresConfig()], out)).toBe(1);
    expect(out.stderr).toEqual([`x402-gateway ledger migrate: nothing copied: ${missing}: file not found`]);
    expect(await querySql(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)).toEqual([]);
  });

  it('refuses a SQLite file written by a newer gateway (its user_version), copying nothing', async () => {
    const url = await server.newDatabase();
    const source = await writeSqliteLedger();
    const db = new Database(source.path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();

    const out = io({ DATABASE_URL: url });
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', postgresConfig()], out)).toBe(1);
    expect(out.stderr).toEqual([
      expect.stringContaining(
        `x402-gateway ledger migrate: nothing copied: the sqlite ledger has schema version ${SQLITE_SCHEMA_VERSION + 1}, newer than this gateway knows (${SQLITE_SCHEMA_VERSION})`,
      ),
    ]);
    expect(await querySql(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)).toEqual([]);
  });

  it('is all or nothing: a statement failing at the last table leaves no receipt copied', async () => {
    const url = await server.newDatabase();
    const source = await writeSqliteLedger();
    await (await PostgresLedger.open(url, { pool: 1 })).close();
    // The last step's INSERT fails, after every receipt, nonce and proof was written in the transaction.
    await querySql(
      url,
      `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;
       CREATE TRIGGER refuse BEFORE INSERT ON payer_penalties FOR EACH ROW EXECUTE FUNCTION refuse();`,
    );

    const out = io({ DATABASE_URL: url });
    expect(await runCli(['ledger', 'migrate', '--from', source.path, '--config', postgresConfig()], out)).toBe(1);
    expect(out.stderr).toEqual(['x402-gateway ledger migrate: nothing copied: refused by test']);
    expect(await dump(url)).toEqual({ receipts: [], nonces: [], proofs: [], penalties: [] });
  });
});
