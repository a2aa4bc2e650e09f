/**
 * Memory under a long mixed load: the gateway's RSS and heap before and after 100,000 requests,
 * sampled in between too. The mix is mostly cheap (free small and 64 KiB answers, unpaid requests
 * answered with a 402 challenge) with 1 % paid requests that settle on chain, so it runs in
 * seconds while still passing every cache, the ledger and the settler.
 */
import type { Child } from './children.js';
import { runLoad, type LoadResult } from './load.js';
import { PATHS } from './systems.js';

export interface MemorySample {
  readonly afterRequests: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

export interface MemoryResults {
  readonly samples: readonly MemorySample[];
  readonly statuses: Readonly<Record<number, number>>;
  readonly requests: number;
  readonly paid: number;
  readonly seconds: number;
}

/** Out of every 100 requests: 1 paid, 39 unpaid on a priced route (402), 5 free 64 KiB, 55 free small. */
export function mixedRequest(i: number, paidHeader: () => Record<string, string>): { path: string; headers?: Record<string, string> } {
  const slot = i % 100;
  if (slot === 0) return { path: PATHS.paidAfter, headers: paidHeader() };
  if (slot < 40) return { path: PATHS.paidAfter };
  if (slot < 45) return { path: PATHS.freeBig };
  return { path: PATHS.freeSmall };
}

export async function runMemoryPhase(o: {
  readonly gateway: Child;
  /** Mixed requests run first and not counted, so that "before" is a warmed-up process. */
  readonly warmup: number;
  readonly total: number;
  readonly chunks: number;
  readonly connections: number;
  readonly paidHeader: () => Record<string, string>;
  readonly log: (line: string) => void;
}): Promise<MemoryResults> {
  let i = 0;
  let paid = 0;
  await runLoad({ url: o.gateway.url, connections: o.connections, amount: o.warmup, next: () => mixedRequest(i++, o.paidHeader) });
  const samples: MemorySample[] = [];
  const first = await o.gateway.memory();
  samples.push({ afterRequests: 0, rss: first.rss, heapUsed: first.heapUsed, external: first.external });
  o.log(`memory after a warm-up of ${o.warmup} requests: rss ${(first.rss / 2 ** 20).toFixed(1)} MiB, heap ${(first.heapUsed / 2 ** 20).toFixed(1)} MiB`);
  const statuses: Record<number, number> = {};
  let seconds = 0;
  let requests = 0;
  for (let chunk = 1; chunk <= o.chunks; chunk++) {
    const load: LoadResult = await runLoad({
      url: o.gateway.url,
      connections: o.connections,
      amount: Math.round(o.total / o.chunks),
      next: () => {
        const planned = mixedRequest(i++, o.paidHeader);
        if (planned.headers !== undefined) paid++;
        return planned;
      },
    });
    if (load.errors > 0) throw new Error(`memory run: ${load.errors} connection errors`);
    for (const [status, count] of Object.entries(load.statuses)) statuses[Number(status)] = (statuses[Number(status)] ?? 0) + count;
    seconds += load.seconds;
    requests += load.requests;
    const memory = await o.gateway.memory();
    samples.push({ afterRequests: requests, rss: memory.rss, heapUsed: memory.heapUsed, external: memory.external });
    o.log(`memory after ${requests} requests: rss ${(memory.rss / 2 ** 20).toFixed(1)} MiB, heap ${(memory.heapUsed / 2 ** 20).toFixed(1)} MiB (${load.rps.toFixed(0)} req/s)`);
  }
  return { samples, statuses, requests, paid, seconds };
}
