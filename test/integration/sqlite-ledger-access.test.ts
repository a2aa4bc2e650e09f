/**
 * A SQLite ledger the process may not open says which file, as which uid, what is in the way and
 * what to do, instead of SQLite's bare "unable to open database file": in-process for the faults
 * that hold for any user (a parent that is a file, a missing directory), and as an unprivileged
 * uid for permissions (root ignores them, and these tests may run as root). PostgreSQL's own
 * errors are passed on as they are.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { SqliteLedgerAccessError } from '../../src/ledger/sqlite-file-access.js';

const dir = mkdtempSync(join(tmpdir(), 'x402-ledger-access-'));
const uid = process.getuid?.();
const RETENTION = { retentionMs: 86_400_000 };

/** The error `openLedger` rejects with for a SQLite file at `path`. */
async function openError(path: string): Promise<Error> {
  const err: unknown = await openLedger({ store: 'sqlite', path, ...RETENTION }).then(
    (ledger) => ledger.close().then(() => undefined),
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error(`expected ${path} not to open`);
  return err;
}

describe('SQLite ledger paths no user can open', () => {
  it('a parent that is a regular file: names the path, the uid and the fix', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const path = join(file, 'ledger.db');
    const err = await openError(path);
    expect(err).toBeInstanceOf(SqliteLedgerAccessError);
    expect(err.message).toBe(
      `cannot open the SQLite ledger ${path} as uid ${uid}, the user this process runs as: ${file} is not a directory ` +
        `(SQLite: unable to open database file). To fix: set ledger.path to a file in a directory uid ${uid} can write`,
    );
    expect((err.cause as { code?: string }).code).toBe('SQLITE_CANTOPEN');
  });

  it('a missing directory: says so, and to create it or mount a volume there', async () => {
    const path = join(dir, 'missing', 'ledger.db');
    const err = await openError(path);
    expect(err).toBeInstanceOf(SqliteLedgerAccessError);
    expect(err.message).toContain(`cannot open the SQLite ledger ${path} as uid ${uid}`);
    expect(err.message).toContain(`the directory ${join(dir, 'missing')} does not exist`);
    expect(err.message).toContain(`To fix: create ${join(dir, 'missing')} writable by uid ${uid} (in a container, mount a volume there)`);
  });

  it('a directory where the file should be', async () => {
    const path = join(dir, 'a-directory');
    mkdirSync(path);
    const err = await openError(path);
    expect(err).toBeInstanceOf(SqliteLedgerAccessError);
    expect(err.message).toContain(`${path} is a directory, not a file`);
  });

  it('a path that can be written still opens, and :memory: too', async () => {
    const ledger = new SqliteLedger(join(dir, 'fine.db'));
    await ledger.close();
    await new SqliteLedger(':memory:').close();
  });

  it('PostgreSQL errors are passed on untouched', async () => {
    const err: unknown = await openLedger({ store: 'postgres', url: 'postgres://gateway:secret@127.0.0.1:1/ledger', pool: 2, ...RETENTION }).then(
      (ledger) => ledger.close(),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(SqliteLedgerAccessError);
    expect(String((err as Error).message)).not.toContain('SQLite');
    expect(JSON.stringify(err)).toContain('ECONNREFUSED');
  });
});

/**
 * The uid the permission cases run as: this process's when it is not root; as root, `nobody`
 * (65534) in a child process, since root may write anything.
 */
const UNPRIVILEGED_UID = 65_534;

/** `x402-gateway start` on a config whose ledger is `ledgerPath`, as the unprivileged uid; its exit code and stderr. */
function startAsUnprivileged(ledgerPath: string): Promise<{ code: number | null; stderr: string }> {
  const configDir = mkdtempSync(join(tmpdir(), 'x402-ledger-access-config-'));
  chmodSync(configDir, 0o755);
  const configPath = join(configDir, 'gateway.yaml');
  writeFileSync(
    configPath,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", settle: { mode: facilitator, url: "http://127.0.0.1:9" } }
upstreams:
  api: { url: "http://127.0.0.1:9" }
routes:
  - { match: "GET /weather", price: "$0.01" }
ledger: { path: "${ledgerPath}" }
reload: { watch: false }
log: { level: error }
`,
  );
  chmodSync(configPath, 0o644);
  const asRoot = uid === 0;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'start', '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(asRoot ? { uid: UNPRIVILEGED_UID, gid: UNPRIVILEGED_UID } : {}),
    // tsx keeps its cache under the temporary directory, per user; HOME for anything else that looks.
    env: { ...process.env, HOME: tmpdir() },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => void (stderr += text));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

const runsAs = uid === 0 ? UNPRIVILEGED_UID : uid;

describe.skipIf(uid === undefined)(`SQLite ledger paths uid ${runsAs} may not write (the gateway started as that uid)`, () => {
  it('a read-only directory (a /data volume owned by another user): path, uid and what to do, in one line, exit 1', async () => {
    const data = mkdtempSync(join(tmpdir(), 'x402-readonly-data-'));
    chmodSync(data, 0o555);
    const path = join(data, 'ledger.db');
    const { code, stderr } = await startAsUnprivileged(path);
    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n')).toEqual([
      `x402-gateway: could not start: cannot open the SQLite ledger ${path} as uid ${runsAs}, the user this process runs as: ` +
        `the directory ${data} is not writable by uid ${runsAs} (SQLite: unable to open database file). ` +
        `To fix: mount a volume writable by uid ${runsAs} at ${data} (or chown the directory and the file to uid ${runsAs}), ` +
        `or set ledger.path to a file in a directory uid ${runsAs} can write`,
    ]);
  });

  it('a ledger file it may read but not write: refused at start, not at the first payment', async () => {
    const data = mkdtempSync(join(tmpdir(), 'x402-readonly-file-'));
    chmodSync(data, 0o777);
    const path = join(data, 'ledger.db');
    await new SqliteLedger(path).close();
    chmodSync(path, 0o444);
    const { code, stderr } = await startAsUnprivileged(path);
    expect(code).toBe(1);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(`cannot open the SQLite ledger ${path} as uid ${runsAs}, the user this process runs as: the file ${path} is not writable by uid ${runsAs}. To fix:`);
  });
});
