/**
 * The systems of the paid windows, started on a window's fresh chain:
 *
 * - `after`, `before`: one gateway on a SQLite file of its own, settling after / before the
 *   upstream answered;
 * - `official`: @x402/express + the official facilitator;
 * - `postgres`: one gateway settling after, its ledger a fresh PostgreSQL database;
 * - `postgres-pair`: two gateways with the same config (ports aside) on one fresh PostgreSQL
 *   database and one settler key, the callers split between them: the shared store is what
 *   allocates their transaction nonces, so they must not collide.
 */
import type { Child } from './children.js';
import type { BenchPostgres } from './postgres-server.js';
import { PATHS, startGateway, startOfficial } from './systems.js';

export type PaidSystem = 'after' | 'before' | 'official' | 'postgres' | 'postgres-pair';

/** Systems on the shared PostgreSQL store: their failed payments are findings, reported as incidents. */
export const POSTGRES_SYSTEMS: ReadonlySet<PaidSystem> = new Set(['postgres', 'postgres-pair']);

/** A system running, ready for a window. */
export interface StartedSystem {
  /** Base URLs taking calls; a window splits its callers and payments evenly between them. */
  readonly urls: readonly string[];
  readonly path: string;
  /** Processes whose CPU is the system's own: the gateway(s), or the express server. */
  readonly servers: readonly number[];
  /** The official facilitator's process. */
  readonly facilitator?: number;
  stop(): Promise<void>;
}

export interface StartSystemOptions {
  readonly rpcUrl: string;
  readonly upstream: Child;
  readonly postgres: BenchPostgres;
  /** Node flags for gateway `i` (profiling), by index. */
  readonly execArgv: (i: number) => readonly string[];
}

export async function startPaidSystem(system: PaidSystem, o: StartSystemOptions): Promise<StartedSystem> {
  switch (system) {
    case 'official': {
      const official = await startOfficial(o.rpcUrl);
      return {
        urls: [official.server.url],
        path: PATHS.paidAfter,
        servers: [official.server.pid],
        facilitator: official.facilitator.pid,
        stop: () => official.stop(),
      };
    }
    case 'after':
    case 'before':
      return gateways(o, 1, system === 'after' ? PATHS.paidAfter : PATHS.paidBefore);
    case 'postgres':
      return gateways(o, 1, PATHS.paidAfter, o.postgres);
    case 'postgres-pair':
      return gateways(o, 2, PATHS.paidAfter, o.postgres);
  }
}

/** `count` gateways; on PostgreSQL all share one fresh database, dropped when they stop. */
async function gateways(o: StartSystemOptions, count: number, path: string, postgres?: BenchPostgres): Promise<StartedSystem> {
  const postgresUrl = postgres === undefined ? undefined : await postgres.newDatabase();
  const running: Child[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(running.map((g) => g.stop()));
    if (postgresUrl !== undefined) await postgres?.dropDatabase(postgresUrl);
  };
  try {
    // One after the other: the first migrates the new database's schema, the next finds it done.
    for (let i = 0; i < count; i++) {
      running.push(
        await startGateway({
          rpcUrl: o.rpcUrl,
          upstreamUrl: o.upstream.url,
          ...(postgresUrl === undefined ? {} : { postgresUrl }),
          execArgv: o.execArgv(i),
        }),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls: running.map((g) => g.url), path, servers: running.map((g) => g.pid), stop };
}
