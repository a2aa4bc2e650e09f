/**
 * Paid requests on 2 s blocks (issue #12): the gateway settling `deferred` (served at once, the
 * payment queued and settled later in Multicall3 batches), the same gateway settling `after` (the
 * answer waits for the settlement's block), and the official stack (@x402/express + the official
 * facilitator, which also waits for the block). The automine windows (paid-phase.ts) measure the
 * servers' work; these measure what a caller feels when the chain has Base's block time.
 *
 * Each window runs on a fresh anvil with `--block-time 2`, one gateway config for both gateway
 * systems (the route is the only difference), pre-signed unique payments from the official v2
 * client, and a short warm-up. After a deferred window the harness waits until the payee holds
 * every payment of the window (the batcher drained the queue), then reads every settlement
 * transaction from the chain (chain-settlements.ts): gasUsed from receipts, payments per
 * transaction from the token's events.
 */
import { privateKeyToAccount } from 'viem/accounts';
import { PAYEE, SETTLER_KEY, v2HttpClient } from '../../test/helpers/chain-world.js';
import { startBlockTimeChain, BASE_BLOCK_TIME_SECONDS } from './block-time-chain.js';
import { settlementTxs, type SettlementTx } from './chain-settlements.js';
import type { Child } from './children.js';
import { cpuDelta, cpuSnapshot } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import { headerQueue, presign } from './payments.js';
import { watchForNonceGap } from './stall-watch.js';
import { retryWindow } from './retry-window.js';
import { PAID_PRICE_ATOMIC, PATHS, startGateway, startOfficial, type DeferredTerms } from './systems.js';

export type BlockTimeSystem = 'deferred' | 'after' | 'official';

/** The systems of every level, in the order of the first round. */
export const BLOCK_TIME_SYSTEMS: readonly BlockTimeSystem[] = ['deferred', 'after', 'official'];

/** How long the batcher may take to settle a deferred window's queue before the run gives up. */
export const DRAIN_TIMEOUT_MS = 90_000;
const DRAIN_POLL_MS = 200;
const WARMUP_CONNECTIONS = 4;
/** Re-runs of a window that anvil stalled before the run gives up. */
const MAX_WINDOW_ATTEMPTS = 3;

export interface DeferredSample {
  readonly system: BlockTimeSystem;
  readonly connections: number;
  readonly round: number;
  readonly load: LoadResult;
  /** CPU ms per paid request over the measured window: the gateway or the express server, the facilitator, anvil. */
  readonly cpu: Readonly<{ server: number; facilitator: number; anvil: number }>;
  /** Every settlement transaction of the window's chain, warm-up included. */
  readonly settlements: readonly SettlementTx[];
  /** Payments answered 200 on the chain's life (warm-up + window), all of which the payee received. */
  readonly payments: number;
  /** From the window's last answer until the payee held every payment (0 when settled before answering). */
  readonly drainSeconds: number;
}

export interface DeferredIncident {
  readonly system: BlockTimeSystem;
  readonly connections: number;
  readonly round: number;
  readonly reason: string;
}

export interface DeferredPhaseOptions {
  readonly upstream: Child;
  readonly levels: readonly number[];
  readonly rounds: number;
  /** Paid requests per window: synchronous systems settle one block per caller per request, so they get fewer. */
  readonly amount: (system: BlockTimeSystem, connections: number) => number;
  readonly warmup: number;
  readonly terms: DeferredTerms;
  readonly log: (line: string) => void;
  /** When set, gateway windows write a V8 CPU profile here. */
  readonly profileDir?: string;
}

export interface DeferredResults {
  readonly samples: DeferredSample[];
  readonly incidents: DeferredIncident[];
  readonly blockTimeSeconds: number;
  readonly terms: DeferredTerms;
  readonly warmup: number;
}

export async function runDeferredPhase(o: DeferredPhaseOptions): Promise<DeferredResults> {
  const samples: DeferredSample[] = [];
  const incidents: DeferredIncident[] = [];
  for (const connections of o.levels) {
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? BLOCK_TIME_SYSTEMS : [...BLOCK_TIME_SYSTEMS].reverse();
      for (const system of order) {
        const sample = await retryWindow(MAX_WINDOW_ATTEMPTS, () => window(o, system, connections, round), (err) => {
          if (!(err instanceof WindowStalled)) return false;
          incidents.push({ system, connections, round, reason: err.message });
          o.log(`2 s blocks c=${connections} ${system}: ${err.message}; re-running it on a fresh chain`);
          return true;
        });
        samples.push(sample);
        const s = sample.load;
        o.log(
          `2 s blocks c=${String(connections).padEnd(2)} ${system.padEnd(8)} ${s.rps.toFixed(1).padStart(6)} req/s  p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms  ` +
            `${sample.settlements.length} settlement txs for ${sample.payments} payments` +
            (system === 'deferred' ? `, queue drained ${sample.drainSeconds.toFixed(1)} s after the last answer` : ''),
        );
      }
    }
  }
  return { samples, incidents, blockTimeSeconds: BASE_BLOCK_TIME_SECONDS, terms: o.terms, warmup: o.warmup };
}

class WindowStalled extends Error {}

async function window(o: DeferredPhaseOptions, system: BlockTimeSystem, connections: number, round: number): Promise<DeferredSample> {
  const amount = o.amount(system, connections);
  const chain = await startBlockTimeChain();
  const anvilPid = chain.chain.process.pid;
  if (anvilPid === undefined) throw new Error('anvil has no pid');
  let stop: (() => Promise<void>) | undefined;
  try {
    let url: string;
    let path: string;
    let pids: Record<string, number>;
    if (system === 'official') {
      const official = await startOfficial(chain.chain.rpcUrl);
      stop = () => official.stop();
      ({ url } = official.server);
      path = PATHS.paidAfter;
      pids = { server: official.server.pid, facilitator: official.facilitator.pid };
    } else {
      const profile = o.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`, `--cpu-prof-name=gateway-${system}-2s-c${connections}-r${round + 1}.cpuprofile`];
      const gateway = await startGateway({ rpcUrl: chain.chain.rpcUrl, upstreamUrl: o.upstream.url, deferred: o.terms, execArgv: profile });
      stop = () => gateway.stop();
      ({ url } = gateway);
      path = system === 'deferred' ? PATHS.paidDeferred : PATHS.paidAfter;
      pids = { server: gateway.pid };
    }
    const http = v2HttpClient();
    const warm = headerQueue(await presign(http, url + path, o.warmup));
    // Autocannon may build a request or two per connection past `amount`.
    const paid = headerQueue(await presign(http, url + path, amount + 2 * connections + 8));
    // Four callers at every level: on 2 s blocks a synchronous warm-up at one caller would take 2 s per payment.
    const warmLoad = await runLoad({ url, connections: WARMUP_CONNECTIONS, amount: o.warmup, next: () => ({ path, headers: warm() }) });
    expectAllPaid(`${system} warm-up`, warmLoad);

    const all = { ...pids, anvil: anvilPid };
    const watch = watchForNonceGap(chain.chain.rpcUrl, privateKeyToAccount(SETTLER_KEY).address);
    const before = cpuSnapshot(all);
    const load = await runLoad({ url, connections, amount, next: () => ({ path, headers: paid() }), signal: watch.signal }).finally(() => watch.stop());
    const cpu = cpuDelta(before, cpuSnapshot(all));
    const stalled = watch.reason();
    if (stalled !== undefined) throw new WindowStalled(stalled);
    expectAllPaid(`${system} c=${connections}`, load);
    const answeredAt = performance.now();

    const payments = warmLoad.requests + load.requests;
    await waitForPayee(chain.balance, BigInt(payments) * PAID_PRICE_ATOMIC, `${system} c=${connections}`);
    const drainSeconds = system === 'deferred' ? (performance.now() - answeredAt) / 1000 : 0;
    const settlements = await settlementTxs(chain.admin, privateKeyToAccount(SETTLER_KEY).address);
    const moved = settlements.reduce((sum, tx) => sum + tx.payments, 0);
    if (moved !== payments) throw new Error(`${system} c=${connections}: ${payments} payments answered 200, ${moved} found settled on chain`);
    const per = (name: string): number => (cpu[name] ?? 0) / load.requests;
    return { system, connections, round, load, cpu: { server: per('server'), facilitator: per('facilitator'), anvil: per('anvil') }, settlements, payments, drainSeconds };
  } finally {
    await stop?.();
    await chain.stop();
  }
}

/** Until the payee holds `atomic`: every payment served was settled (or the run stops). */
async function waitForPayee(balance: (owner: `0x${string}`) => Promise<bigint>, atomic: bigint, what: string): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const held = await balance(PAYEE);
    if (held >= atomic) return;
    if (performance.now() > deadline) throw new Error(`${what}: the payee holds ${held} of ${atomic} after ${DRAIN_TIMEOUT_MS} ms: payments served and not settled`);
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
}

/** Any payment that failed makes the window measure something else: a harness or gateway bug, so the run stops. */
function expectAllPaid(what: string, load: LoadResult): void {
  const ok = load.statuses[200] ?? 0;
  if (ok === load.requests && load.errors === 0) return;
  throw new Error(`${what}: ${load.requests - ok} of ${load.requests} answers not 200 (statuses ${JSON.stringify(load.statuses)}), ${load.errors} connection errors`);
}
