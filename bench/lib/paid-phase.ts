/**
 * Paid route with settlement on chain: the gateway settling after the upstream answered, the
 * gateway settling before, and the official stack (@x402/express + the official facilitator).
 *
 * Each window runs on a FRESH chain (anvil slows as blocks accumulate, DESIGN §7), started the
 * same way for every system, with the same warm-up, so all windows of one level see a chain of
 * the same age. Payments are pre-signed and unique. Windows are interleaved: the order of systems
 * is reversed every round. CPU is read per process: the server(s) under test, anvil, the upstream
 * and the harness (the load generator).
 */
import { privateKeyToAccount } from 'viem/accounts';
import { PAYER_FUNDS, SETTLER_KEY, startChainWorld, v2HttpClient } from '../../test/helpers/chain-world.js';
import { cpuDelta, cpuSnapshot } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import { headerQueue, presign } from './payments.js';
import { PATHS, startGateway, startOfficial } from './systems.js';
import type { Child } from './children.js';
import { watchForNonceGap } from './stall-watch.js';

/** Re-runs of a window that anvil stalled (see stall-watch.ts) before the run gives up. */
export const MAX_WINDOW_ATTEMPTS = 6;

/** A window aborted because the chain stalled, not because a payment failed. */
export class WindowStalled extends Error {
  constructor(
    readonly reason: string,
    /** Paid requests answered before the abort. */
    readonly answered: number,
  ) {
    super(reason);
  }
}

/** A window that had to be re-run, for the report. */
export interface StallIncident {
  readonly system: PaidSystem;
  readonly connections: number;
  readonly round: number;
  readonly reason: string;
  /** Paid requests answered before the window was aborted. */
  readonly answered: number;
}

export type PaidSystem = 'after' | 'before' | 'official';
export const PAID_SYSTEMS: readonly PaidSystem[] = ['after', 'before', 'official'];

export interface PaidSample {
  readonly system: PaidSystem;
  readonly connections: number;
  readonly round: number;
  readonly load: LoadResult;
  /** CPU ms per paid request, per process; `server` is the gateway or the express server. */
  readonly cpu: Readonly<{ server: number; facilitator: number; anvil: number; upstream: number; harness: number }>;
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
  /** When set, gateway windows write a V8 CPU profile here. */
  readonly profileDir?: string;
  readonly log: (line: string) => void;
}

export async function runPaidPhase(o: PaidPhaseOptions): Promise<{ samples: PaidSample[]; incidents: StallIncident[] }> {
  const samples: PaidSample[] = [];
  const incidents: StallIncident[] = [];
  for (const connections of o.levels) {
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? PAID_SYSTEMS : [...PAID_SYSTEMS].reverse();
      for (const system of order) {
        let sample: PaidSample | undefined;
        for (let attempt = 1; sample === undefined; attempt++) {
          try {
            sample = await paidWindow(o, system, connections, round);
          } catch (err) {
            if (!(err instanceof WindowStalled) || attempt >= MAX_WINDOW_ATTEMPTS) throw err;
            const { reason, answered } = err;
            incidents.push({ system, connections, round, reason, answered });
            o.log(`paid c=${connections} ${system}: window aborted after ${answered} answers (${reason}); re-running it on a fresh chain`);
          }
        }
        samples.push(sample);
        const s = sample.load;
        o.log(
          `paid c=${String(connections).padEnd(2)} ${system.padEnd(8)} ${s.rps.toFixed(1).padStart(6)} req/s  p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms  ` +
            `cpu ${(sample.cpu.server + sample.cpu.facilitator).toFixed(2)} ms/req  anvil ${sample.cpu.anvil.toFixed(2)} ms/req (${sample.anvilCores.toFixed(2)} cores)`,
        );
      }
    }
  }
  return { samples, incidents };
}

async function paidWindow(o: PaidPhaseOptions, system: PaidSystem, connections: number, round: number): Promise<PaidSample> {
  const amount = o.amount(connections);
  if ((amount + o.warmup) * 10_000 > PAYER_FUNDS) throw new Error('the payer is not funded for this many $0.01 payments');
  const world = await startChainWorld();
  const anvilPid = world.chain.process.pid;
  if (anvilPid === undefined) throw new Error('anvil has no pid');
  let stop: () => Promise<void> = async () => {};
  try {
    let url: string;
    let path: string;
    let pids: Record<string, number>;
    if (system === 'official') {
      const official = await startOfficial(world.chain.rpcUrl);
      stop = () => official.stop();
      url = official.server.url;
      path = PATHS.paidAfter;
      pids = { server: official.server.pid, facilitator: official.facilitator.pid };
    } else {
      const name = `gateway-${system}-c${connections}-r${round + 1}.cpuprofile`;
      const gateway = await startGateway({
        rpcUrl: world.chain.rpcUrl,
        upstreamUrl: o.upstream.url,
        ...(o.profileDir === undefined ? {} : { execArgv: ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`, `--cpu-prof-name=${name}`] }),
      });
      stop = () => gateway.stop();
      url = gateway.url;
      path = system === 'after' ? PATHS.paidAfter : PATHS.paidBefore;
      pids = { server: gateway.pid };
    }
    const http = v2HttpClient();
    const warm = headerQueue(await presign(http, url + path, o.warmup));
    // Autocannon may build a request or two per connection past `amount`.
    const paid = headerQueue(await presign(http, url + path, amount + 2 * connections + 8));
    const warmLoad = await runLoad({ url, connections: Math.min(connections, 4), amount: o.warmup, next: () => ({ path, headers: warm() }) });
    expectAllPaid(`${system} warm-up`, warmLoad);

    const all = { ...pids, anvil: anvilPid, upstream: o.upstream.pid, harness: process.pid };
    // Both the gateway and the official facilitator settle with the same dev key.
    const watch = watchForNonceGap(world.chain.rpcUrl, privateKeyToAccount(SETTLER_KEY).address);
    const before = cpuSnapshot(all);
    const load = await runLoad({ url, connections, amount, next: () => ({ path, headers: paid() }), signal: watch.signal }).finally(() => watch.stop());
    const cpu = cpuDelta(before, cpuSnapshot(all));
    const stalled = watch.reason();
    if (stalled !== undefined) throw new WindowStalled(stalled, load.requests);
    expectAllPaid(`${system} c=${connections}`, load);
    const per = (name: string): number => (cpu[name] ?? 0) / load.requests;
    return {
      system,
      connections,
      round,
      load,
      cpu: { server: per('server'), facilitator: per('facilitator'), anvil: per('anvil'), upstream: system === 'official' ? 0 : per('upstream'), harness: per('harness') },
      anvilCores: (cpu['anvil'] ?? 0) / (load.seconds * 1000),
      blocks: Number(await world.admin.getBlockNumber()),
    };
  } finally {
    await stop();
    await world.stop();
  }
}

/** A paid window where payments failed measured something else; stop rather than report it. */
function expectAllPaid(what: string, load: LoadResult): void {
  const ok = load.statuses[200] ?? 0;
  if (ok !== load.requests || load.errors > 0) throw new Error(`${what}: statuses ${JSON.stringify(load.statuses)}, ${load.errors} errors`);
}
