/**
 * Free route: the upstream alone, bare fastify + @fastify/http-proxy, and the gateway on a free
 * route, small JSON and 64 KiB answers, windows interleaved (A B C, then rotated) so drift in
 * machine load hits all three alike. CPU per request is read for the proxy and the upstream.
 */
import type { Child } from './children.js';
import { cpuDelta, cpuSnapshot } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import { PATHS } from './systems.js';

export type FreeTarget = 'upstream' | 'bare' | 'gateway';
export type Body = 'small' | 'big';

export interface FreeSample {
  readonly target: FreeTarget;
  readonly body: Body;
  readonly round: number;
  readonly load: LoadResult;
  /** CPU ms per request: of the server under test, and of the upstream behind it. */
  readonly cpuPerRequest: number;
  readonly upstreamCpuPerRequest: number;
}

export interface FreePhaseOptions {
  readonly targets: Readonly<Record<FreeTarget, Child>>;
  readonly upstream: Child;
  readonly rounds: number;
  readonly windowSeconds: number;
  readonly connections: number;
  readonly log: (line: string) => void;
}

export async function runFreePhase(o: FreePhaseOptions): Promise<FreeSample[]> {
  const order: FreeTarget[] = ['upstream', 'bare', 'gateway'];
  // Warm-up: JIT, connection pools, caches; not recorded.
  for (const target of order) {
    for (const path of [PATHS.freeSmall, PATHS.freeBig]) await runLoad({ url: o.targets[target].url, connections: o.connections, durationSeconds: 1, path });
  }
  const samples: FreeSample[] = [];
  for (let round = 0; round < o.rounds; round++) {
    const rotated = [...order.slice(round % order.length), ...order.slice(0, round % order.length)];
    for (const body of ['small', 'big'] as const) {
      for (const target of rotated) {
        const child = o.targets[target];
        const pids = { server: child.pid, upstream: o.upstream.pid };
        const before = cpuSnapshot(pids);
        const load = await runLoad({
          url: child.url,
          connections: o.connections,
          durationSeconds: o.windowSeconds,
          path: body === 'small' ? PATHS.freeSmall : PATHS.freeBig,
        });
        const cpu = cpuDelta(before, cpuSnapshot(pids));
        const ok = load.statuses[200] ?? 0;
        if (ok !== load.requests || load.errors > 0) {
          throw new Error(`free ${target} ${body}: ${JSON.stringify(load.statuses)} and ${load.errors} errors`);
        }
        const per = (ms: number | undefined): number => (ms ?? 0) / Math.max(1, load.requests);
        // Direct to the upstream, the upstream is the server under test.
        samples.push({
          target,
          body,
          round,
          load,
          cpuPerRequest: per(cpu['server']),
          upstreamCpuPerRequest: target === 'upstream' ? 0 : per(cpu['upstream']),
        });
        o.log(`free ${body.padEnd(5)} ${target.padEnd(8)} ${load.rps.toFixed(0).padStart(6)} req/s  p50 ${load.p50.toFixed(2)} ms  p99 ${load.p99.toFixed(2)} ms  cpu ${(per(cpu['server']) * 1000).toFixed(0)} µs/req`);
      }
    }
  }
  return samples;
}
