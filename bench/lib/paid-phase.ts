/**
 * Paid route with settlement on chain: the gateway settling after the upstream answered, the
 * gateway settling before, the official stack (@x402/express + the official facilitator), the
 * gateway settling after on the PostgreSQL store, and (at one level) two gateways sharing one
 * PostgreSQL database and one settler key (paid-systems.ts).
 *
 * Each window runs on a FRESH chain (anvil slows as blocks accumulate, DESIGN §7), started the
 * same way for every system, with the same warm-up, so all windows of one level see a chain of
 * the same age. Payments are pre-signed and unique. Windows are interleaved: the order of systems
 * is reversed every round. CPU is read per process: the server(s) under test, anvil, the upstream,
 * the harness (the load generator) and, for the PostgreSQL windows, the PostgreSQL server.
 */
import { privateKeyToAccount } from 'viem/accounts';
import { PAYER_FUNDS, SETTLER_KEY, startChainWorld, v2HttpClient } from '../../test/helpers/chain-world.js';
import type { Child } from './children.js';
import { cpuDelta, cpuSnapshot } from './cpu.js';
import { runLoad, runLoads, type LoadResult } from './load.js';
import { startPaidSystem, POSTGRES_SYSTEMS, type PaidSystem, type StartedSystem } from './paid-systems.js';
import { headerQueue, presign } from './payments.js';
import type { BenchPostgres } from './postgres-server.js';
import { retryWindow } from './retry-window.js';
import { watchForNonceGap } from './stall-watch.js';
import { PAID_PRICE_ATOMIC } from './systems.js';

export type { PaidSystem } from './paid-systems.js';

/** Re-runs of a window that anvil stalled (see stall-watch.ts) or whose payments failed before the run gives up. */
export const MAX_WINDOW_ATTEMPTS = 6;


/** The systems of every level, in the order of the first round. */
export const PAID_SYSTEMS: readonly PaidSystem[] = ['after', 'before', 'official', 'postgres'];

/** A window ended early or thrown away, to be re-run on a fresh chain and reported. */
export class WindowAborted extends Error {
  constructor(
    readonly kind: WindowIncident['kind'],
    readonly reason: string,
    /** Paid requests answered before the abort (or in the whole window, for failed payments). */
    readonly answered: number,
  ) {
    super(reason);
  }
}

/** A window that had to be re-run, for the report. */
export interface WindowIncident {
  /** `stall`: anvil dropped a transaction (stall-watch.ts); `failed`: payments of a PostgreSQL window failed. */
  readonly kind: 'stall' | 'failed';
  readonly system: PaidSystem;
  readonly connections: number;
  readonly round: number;
  readonly reason: string;
  /** Paid requests answered before the window was aborted. */
  readonly answered: number;
}

export interface PaidSample {
  readonly system: PaidSystem;
  readonly connections: number;
  readonly round: number;
  /** Gateway (or express server) processes the callers were split between. */
  readonly servers: number;
  readonly load: LoadResult;
  /**
   * CPU ms per paid request, per process; `server` is the gateway or the express server (summed
   * over the gateways sharing a store); `postgres` the PostgreSQL server's processes, only in its
   * windows and when its pid was found.
   */
  readonly cpu: Readonly<{ server: number; facilitator: number; anvil: number; upstream: number; harness: number; postgres?: number }>;
  /** anvil's CPU time over the window's wall time: 1.0 is one core kept busy. */
  readonly anvilCores: number;
  /** Blocks on the chain when the window ended (its age). */
  readonly blocks: number;
}

export interface PaidPhaseOptions {
  readonly upstream: Child;
  readonly levels: readonly number[];
  readonly rounds: number;
  /** Paid requests per window, by concurrency. */
  readonly amount: (connections: number) => number;
  readonly warmup: number;
  /** The server of the PostgreSQL windows, one for the run; each window takes a fresh database. */
  readonly postgres: BenchPostgres;
  /** The level (callers) at which two gateways share one PostgreSQL database and key. */
  readonly pairConnections: number;
  /** When set, gateway windows write a V8 CPU profile here. */
  readonly profileDir?: string;
  readonly log: (line: string) => void;
}

export async function runPaidPhase(o: PaidPhaseOptions): Promise<{ samples: PaidSample[]; incidents: WindowIncident[] }> {
  const samples: PaidSample[] = [];
  const incidents: WindowIncident[] = [];
  for (const connections of o.levels) {
    const systems: readonly PaidSystem[] = connections === o.pairConnections ? [...PAID_SYSTEMS, 'postgres-pair'] : PAID_SYSTEMS;
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? systems : [...systems].reverse();
      for (const system of order) {
        const sample = await retryWindow(MAX_WINDOW_ATTEMPTS, () => paidWindow(o, system, connections, round), (err) => {
          if (!(err instanceof WindowAborted)) return false;
          const { kind, reason, answered } = err;
          incidents.push({ kind, system, connections, round, reason, answered });
          o.log(`paid c=${connections} ${system}: window ${kind === 'stall' ? `aborted after ${answered} answers` : 'failed'} (${reason}); re-running it on a fresh chain`);
          return true;
        });
        samples.push(sample);
        logSample(o, sample);
      }
    }
  }
  return { samples, incidents };
}

function logSample(o: PaidPhaseOptions, sample: PaidSample): void {
  const s = sample.load;
  const postgres = sample.cpu.postgres === undefined ? '' : `  postgres ${sample.cpu.postgres.toFixed(2)} ms/req`;
  o.log(
    `paid c=${String(sample.connections).padEnd(2)} ${sample.system.padEnd(13)} ${s.rps.toFixed(1).padStart(6)} req/s  p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms  ` +
      `cpu ${(sample.cpu.server + sample.cpu.facilitator).toFixed(2)} ms/req  anvil ${sample.cpu.anvil.toFixed(2)} ms/req (${sample.anvilCores.toFixed(2)} cores)${postgres}`,
  );
}

async function paidWindow(o: PaidPhaseOptions, system: PaidSystem, connections: number, round: number): Promise<PaidSample> {
  const amount = o.amount(connections);
  const world = await startChainWorld();
  const anvilPid = world.chain.process.pid;
  if (anvilPid === undefined) throw new Error('anvil has no pid');
  let started: StartedSystem | undefined;
  try {
    started = await startPaidSystem(system, {
      rpcUrl: world.chain.rpcUrl,
      upstream: o.upstream,
      postgres: o.postgres,
      execArgv: (i) => profileFlags(o, `gateway-${system}-c${connections}-r${round + 1}${i === 0 ? '' : `-${i + 1}`}.cpuprofile`),
    });
    const { urls, path } = started;
    if (connections % urls.length !== 0) throw new Error(`${connections} callers cannot be split evenly over ${urls.length} servers`);
    // Every server is warmed up as the single one is, so that each process is as warm.
    const payments = BigInt(amount + o.warmup * urls.length) * PAID_PRICE_ATOMIC;
    if (payments > PAYER_FUNDS) throw new Error('the payer is not funded for this many $0.01 payments');
    const share = { connections: connections / urls.length, amount: Math.ceil(amount / urls.length) };

    const http = v2HttpClient();
    const queues = await Promise.all(
      urls.map(async (url) => ({
        url,
        warm: headerQueue(await presign(http, url + path, o.warmup)),
        // Autocannon may build a request or two per connection past `amount`.
        paid: headerQueue(await presign(http, url + path, share.amount + 2 * share.connections + 8)),
      })),
    );
    for (const q of queues) {
      const warmLoad = await runLoad({ url: q.url, connections: Math.min(share.connections, 4), amount: o.warmup, next: () => ({ path, headers: q.warm() }) });
      expectAllPaid(system, `${system} warm-up`, warmLoad);
    }

    const servers = Object.fromEntries(started.servers.map((pid, i) => [`server${i}`, pid]));
    const all = { ...servers, ...(started.facilitator === undefined ? {} : { facilitator: started.facilitator }), anvil: anvilPid, upstream: o.upstream.pid, harness: process.pid };
    const onPostgres = POSTGRES_SYSTEMS.has(system);
    // Both the gateway and the official facilitator settle with the same dev key.
    const watch = watchForNonceGap(world.chain.rpcUrl, privateKeyToAccount(SETTLER_KEY).address);
    const postgresBefore = onPostgres ? o.postgres.cpuMs() : undefined;
    const before = cpuSnapshot(all);
    const load = await runLoads(
      queues.map((q) => ({ url: q.url, connections: share.connections, amount: share.amount, next: () => ({ path, headers: q.paid() }), signal: watch.signal })),
    ).finally(() => watch.stop());
    const cpu = cpuDelta(before, cpuSnapshot(all));
    const postgresAfter = onPostgres ? o.postgres.cpuMs() : undefined;
    const stalled = watch.reason();
    if (stalled !== undefined) throw new WindowAborted('stall', stalled, load.requests);
    expectAllPaid(system, `${system} c=${connections}`, load);
    const per = (name: string): number => (cpu[name] ?? 0) / load.requests;
    const postgres = postgresBefore === undefined || postgresAfter === undefined ? {} : { postgres: (postgresAfter - postgresBefore) / load.requests };
    return {
      system,
      connections,
      round,
      servers: urls.length,
      load,
      cpu: {
        server: Object.keys(servers).reduce((sum, name) => sum + per(name), 0),
        facilitator: per('facilitator'),
        anvil: per('anvil'),
        upstream: system === 'official' ? 0 : per('upstream'),
        harness: per('harness'),
        ...postgres,
      },
      anvilCores: (cpu['anvil'] ?? 0) / (load.seconds * 1000),
      blocks: Number(await world.admin.getBlockNumber()),
    };
  } finally {
    await started?.stop();
    await world.stop();
  }
}

function profileFlags(o: PaidPhaseOptions, name: string): readonly string[] {
  return o.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`, `--cpu-prof-name=${name}`];
}

/**
 * A paid window where payments failed measured something else. On the SQLite store and the
 * official stack that is a harness or gateway bug: stop the run rather than report it. On the
 * shared PostgreSQL store a failure (a nonce two gateways both took, a store error under load) is
 * what those windows are there to find: it is reported as an incident and the window re-run, so
 * the figures stay those of windows where every payment succeeded.
 */
function expectAllPaid(system: PaidSystem, what: string, load: LoadResult): void {
  const ok = load.statuses[200] ?? 0;
  if (ok === load.requests && load.errors === 0) return;
  const reason = `${what}: ${load.requests - ok} of ${load.requests} answers not 200 (statuses ${JSON.stringify(load.statuses)}), ${load.errors} connection errors`;
  if (POSTGRES_SYSTEMS.has(system)) throw new WindowAborted('failed', reason, load.requests);
  throw new Error(reason);
}
