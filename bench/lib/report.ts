/**
 * bench/RESULTS.md from one run: the targets of issues #5 and #11 with their measured ratios first,
 * then every figure behind them. Medians are over the interleaved rounds; latency percentiles are of
 * all responses of a window.
 */
import type { DeferredResults } from './deferred-phase.js';
import { renderDeferredSection } from './deferred-report.js';
import type { FreeSample, FreeTarget } from './free-phase.js';
import type { Machine } from './machine.js';
import type { MemoryResults } from './memory-phase.js';
import type { PaidSample, PaidSystem, WindowIncident } from './paid-phase.js';
import { POSTGRES_SYSTEMS } from './paid-systems.js';
import { median } from './stats.js';
import type { VerifyResults } from './verify-phase.js';

export interface RunSettings {
  readonly quick: boolean;
  readonly freeRounds: number;
  readonly freeWindowSeconds: number;
  readonly freeConnections: number;
  readonly paidRounds: number;
  readonly paidLevels: readonly number[];
  readonly paidAmounts: Readonly<Record<number, number>>;
  /** The level at which two gateways share one PostgreSQL database and settler key. */
  readonly pairConnections: number;
  readonly memoryRequests: number;
}

export interface RunResults {
  readonly machine: Machine;
  readonly settings: RunSettings;
  readonly startedAt: Date;
  readonly seconds: number;
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly free?: readonly FreeSample[];
  readonly paid?: readonly PaidSample[];
  /** Paid windows re-run: anvil dropped a transaction, or payments on PostgreSQL failed. */
  readonly incidents?: readonly WindowIncident[];
  readonly verify?: VerifyResults;
  readonly memory?: MemoryResults;
  /** The 2 s block windows (issue #12), and the command line that ran them. */
  readonly deferred?: DeferredResults;
  readonly command?: string;
}

interface Target {
  readonly name: string;
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : 'n/a');
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const x = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const verdict = (met: boolean | undefined): string => (met === undefined ? 'not measured' : met ? '**met**' : '**not met**');

function freeStats(samples: readonly FreeSample[], target: FreeTarget, body: 'small' | 'big') {
  const of = samples.filter((s) => s.target === target && s.body === body);
  return {
    n: of.length,
    rps: median(of.map((s) => s.load.rps)),
    p50: median(of.map((s) => s.load.p50)),
    p99: median(of.map((s) => s.load.p99)),
    cpuUs: median(of.map((s) => s.cpuPerRequest * 1000)),
    upstreamCpuUs: median(of.map((s) => s.upstreamCpuPerRequest * 1000)),
  };
}

function paidStats(samples: readonly PaidSample[], system: PaidSystem, connections: number) {
  const of = samples.filter((s) => s.system === system && s.connections === connections);
  const total = (s: PaidSample): number => s.cpu.server + s.cpu.facilitator + s.cpu.anvil + s.cpu.upstream + s.cpu.harness + (s.cpu.postgres ?? 0);
  return {
    n: of.length,
    rps: median(of.map((s) => s.load.rps)),
    p50: median(of.map((s) => s.load.p50)),
    p99: median(of.map((s) => s.load.p99)),
    /** The system's own processes: the gateway, or express server + facilitator. */
    cpu: median(of.map((s) => s.cpu.server + s.cpu.facilitator)),
    server: median(of.map((s) => s.cpu.server)),
    facilitator: median(of.map((s) => s.cpu.facilitator)),
    anvil: median(of.map((s) => s.cpu.anvil)),
    anvilShare: median(of.map((s) => s.cpu.anvil / total(s))),
    anvilCores: median(of.map((s) => s.anvilCores)),
    upstream: median(of.map((s) => s.cpu.upstream)),
    harness: median(of.map((s) => s.cpu.harness)),
    /** The PostgreSQL server's processes; NaN where not measured (no PostgreSQL, or no pid). */
    postgres: median(of.flatMap((s) => (s.cpu.postgres === undefined ? [] : [s.cpu.postgres]))),
    blocks: median(of.map((s) => s.blocks)),
    requests: of.reduce((sum, s) => sum + s.load.requests, 0),
  };
}

/** Per level: the gateway (settle after) on PostgreSQL against the same gateway on SQLite. */
function storeComparison(samples: readonly PaidSample[], connections: number) {
  const postgres = paidStats(samples, 'postgres', connections);
  const sqlite = paidStats(samples, 'after', connections);
  return { postgres, sqlite, ratio: postgres.cpu / sqlite.cpu, withServer: (postgres.cpu + postgres.postgres) / sqlite.cpu };
}

const failedWindows = (r: RunResults, system: PaidSystem): number => (r.incidents ?? []).filter((i) => i.kind === 'failed' && i.system === system).length;

function targets(r: RunResults): Target[] {
  const out: Target[] = [];
  if (r.free) {
    for (const body of ['small', 'big'] as const) {
      const gw = freeStats(r.free, 'gateway', body);
      const bare = freeStats(r.free, 'bare', body);
      const ratio = gw.rps / bare.rps;
      out.push({
        name: `Free route, ${body === 'small' ? 'small JSON' : '64 KiB'}: throughput`,
        goal: '>= 1.0x bare fastify + @fastify/http-proxy',
        measured: `${x(ratio)} (${f0(gw.rps)} vs ${f0(bare.rps)} req/s)`,
        met: ratio >= 1.0,
      });
      out.push({
        name: `Free route, ${body === 'small' ? 'small JSON' : '64 KiB'}: p99 latency`,
        goal: 'no worse than bare',
        measured: `${x(gw.p99 / bare.p99)} (${f2(gw.p99)} vs ${f2(bare.p99)} ms)`,
        met: gw.p99 <= bare.p99,
      });
    }
  }
  if (r.paid) {
    const levels = r.settings.paidLevels;
    const cpuRatios = levels.map((c) => paidStats(r.paid ?? [], 'after', c).cpu / paidStats(r.paid ?? [], 'official', c).cpu);
    const worst = Math.max(...cpuRatios);
    out.push({
      name: 'Paid (after, local settler): CPU per paid request',
      goal: '<= 0.10x official server + facilitator',
      measured: `${x(worst)} at worst (${levels.map((c, i) => `c=${c}: ${x(cpuRatios[i] ?? Number.NaN)}`).join(', ')})`,
      met: worst <= 0.1,
    });
    const top = Math.max(...levels);
    const gw = paidStats(r.paid, 'after', top);
    const official = paidStats(r.paid, 'official', top);
    out.push({
      name: `Paid (after): throughput at ${top} callers`,
      goal: '>= 5x official',
      measured:
        `${x(gw.rps / official.rps)} (${f1(gw.rps)} vs ${f1(official.rps)} req/s; anvil ${f2(gw.anvil)} ms CPU per paid request, ` +
        `${f0(gw.anvilShare * 100)} % of all CPU, ${f2(gw.anvilCores)} cores busy; gateway ${f2(gw.cpu)} ms, ${f2((gw.cpu * gw.rps) / 1000)} cores busy)`,
      met: gw.rps / official.rps >= 5,
    });
    const stores = levels.map((c) => storeComparison(r.paid ?? [], c));
    const worstStore = Math.max(...stores.map((st) => st.ratio));
    out.push({
      name: 'Paid (after): gateway CPU per paid request, PostgreSQL store',
      goal: '<= 1.3x the same gateway on SQLite',
      measured:
        `${x(worstStore)} at worst (${levels.map((c, i) => `c=${c}: ${x(stores[i]?.ratio ?? Number.NaN)}`).join(', ')}); ` +
        `with the PostgreSQL server's own CPU added: ${levels.map((c, i) => `c=${c}: ${x(stores[i]?.withServer ?? Number.NaN)}`).join(', ')}`,
      met: Number.isFinite(worstStore) ? worstStore <= 1.3 : undefined,
    });
    const pair = paidStats(r.paid, 'postgres-pair', r.settings.pairConnections);
    const single = paidStats(r.paid, 'postgres', r.settings.pairConnections);
    const pairFailures = failedWindows(r, 'postgres-pair');
    out.push({
      name: `Paid (after): two gateways, one PostgreSQL database and one settler key, ${r.settings.pairConnections} callers`,
      goal: 'every paid request succeeds (no nonce collision)',
      measured:
        pair.n === 0
          ? 'not measured'
          : `${pair.requests} paid requests in ${pair.n} window(s), all 200; ${pairFailures} window(s) with failed payments re-run; ` +
            `${f1(pair.rps)} req/s (${x(pair.rps / single.rps)} one gateway), ${f2(pair.cpu)} ms of gateway CPU per paid request over both (one gateway: ${f2(single.cpu)})`,
      met: pair.n === 0 ? undefined : pairFailures === 0,
    });
    const one = Math.min(...levels);
    const gw1 = paidStats(r.paid, 'after', one);
    const official1 = paidStats(r.paid, 'official', one);
    out.push({
      name: `Paid (after): median latency, ${one} caller`,
      goal: '<= 0.5x official',
      measured: `${x(gw1.p50 / official1.p50)} (${f1(gw1.p50)} vs ${f1(official1.p50)} ms)`,
      met: gw1.p50 / official1.p50 <= 0.5,
    });
  }
  if (r.verify) {
    out.push({
      name: 'Verification alone, one core',
      goal: '>= 5,000 payments/s',
      measured: `${f0(r.verify.verifierPerSecond)} /s (${x(r.verify.verifierPerSecond / 5000)} of the goal)`,
      met: r.verify.verifierPerSecond >= 5000,
    });
  }
  if (r.memory) {
    const first = r.memory.samples[0];
    const last = r.memory.samples[r.memory.samples.length - 1];
    if (first && last) {
      const ratio = last.rss / first.rss;
      const rss = r.memory.samples.map((sample) => sample.rss);
      out.push({
        name: `Memory across ${r.memory.requests.toLocaleString('en')} mixed requests`,
        goal: 'RSS within 10 % (before vs after)',
        measured:
          `${x(ratio)} (${mib(first.rss)} -> ${mib(last.rss)} MiB; samples between ${mib(Math.min(...rss))} and ${mib(Math.max(...rss))}; ` +
          `heap after GC ${mib(first.heapUsed)} -> ${mib(last.heapUsed)} MiB, ${x(last.heapUsed / first.heapUsed)})`,
        met: Math.abs(ratio - 1) <= 0.1,
      });
    }
  }
  return out;
}

/** The rows of the paid table, per level, in this order (the pair only at its level). */
const PAID_ROWS: readonly PaidSystem[] = ['after', 'postgres', 'postgres-pair', 'before', 'official'];

const SYSTEM_NAMES: Record<PaidSystem, string> = {
  after: 'x402-gateway, settle after (SQLite)',
  before: 'x402-gateway, settle before (SQLite)',
  official: 'official @x402/express + facilitator',
  postgres: 'x402-gateway, settle after, PostgreSQL',
  'postgres-pair': 'two x402-gateways, one PostgreSQL database + one key, settle after',
};

/** Why a PostgreSQL column may be empty. */
function postgresCpuNote(samples: readonly PaidSample[]): string {
  const onPostgres = samples.filter((w) => POSTGRES_SYSTEMS.has(w.system));
  return onPostgres.length > 0 && onPostgres.every((w) => w.cpu.postgres === undefined)
    ? ' (not measured in this run: the postmaster was not found among the harness\'s child processes)'
    : '';
}

/** The PostgreSQL store against SQLite, same gateway, same windows otherwise. */
function storeSection(samples: readonly PaidSample[], s: RunSettings): string[] {
  return [
    '',
    'The PostgreSQL store against SQLite (the same gateway settling after; goal: gateway CPU <= 1.3x). ' +
      'SQLite runs inside the gateway process, so its cost is in the gateway\'s CPU; PostgreSQL is a separate server, ' +
      'so the last CPU ratio adds the server\'s own CPU to the gateway\'s:',
    '',
    '| Callers | gateway CPU ms/req, PostgreSQL | gateway CPU ms/req, SQLite | PostgreSQL / SQLite | PostgreSQL server ms/req | (gateway + server) / SQLite | req/s PostgreSQL | req/s SQLite |',
    '|---|---|---|---|---|---|---|---|',
    ...s.paidLevels.map((c) => {
      const { postgres, sqlite, ratio, withServer } = storeComparison(samples, c);
      return `| ${c} | ${f2(postgres.cpu)} | ${f2(sqlite.cpu)} | ${x(ratio)} | ${f2(postgres.postgres)} | ${x(withServer)} | ${f1(postgres.rps)} | ${f1(sqlite.rps)} |`;
    }),
  ];
}

/** Two gateways sharing one database and key, next to one gateway on PostgreSQL. */
function pairSection(r: RunResults, samples: readonly PaidSample[]): string[] {
  const c = r.settings.pairConnections;
  const single = paidStats(samples, 'postgres', c);
  const pair = paidStats(samples, 'postgres-pair', c);
  if (pair.n === 0) return [];
  const row = (name: string, gateways: number, st: typeof pair, failed: number): string =>
    `| ${name} | ${gateways} | ${st.requests} | ${f1(st.rps)} | ${f1(st.p50)} | ${f1(st.p99)} | ${f2(st.cpu)} | ${f2((st.cpu * st.rps) / 1000)} | ${f2(st.postgres)} | ${f2(st.anvil)} | ${failed} |`;
  return [
    '',
    `Two gateways on one PostgreSQL database and one settler key, ${c} callers split evenly (${c / 2} each), against one gateway on PostgreSQL ` +
      'with all of them. Transaction nonces come from the shared store, so no payment may fail; paid requests are those of the measured ' +
      'windows, all answered 200. On this machine both gateways, anvil, PostgreSQL and the load generator share the same cores: this shows ' +
      'that sharing works and what it costs per request, not how far a second machine would scale.',
    '',
    '| System | gateways | paid requests | req/s | p50 ms | p99 ms | gateway CPU ms/req (all gateways) | gateway cores busy | PostgreSQL server ms/req | anvil ms/req | windows with failed payments (re-run) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    row('one gateway, PostgreSQL', 1, single, failedWindows(r, 'postgres')),
    row('two gateways, one database, one key', 2, pair, failedWindows(r, 'postgres-pair')),
    '',
    `Two gateways against one: throughput ${x(pair.rps / single.rps)}, gateway CPU per paid request ${x(pair.cpu / single.cpu)}.`,
  ];
}

function incidentLines(incidents: readonly WindowIncident[]): string[] {
  const stalls = incidents.filter((i) => i.kind === 'stall');
  const failed = incidents.filter((i) => i.kind === 'failed');
  const line = (i: WindowIncident, tail: string): string => `- c=${i.connections}, round ${i.round + 1}, ${i.system}: ${i.reason}${tail}`;
  const out = [''];
  if (incidents.length === 0) out.push('No window had to be re-run.');
  if (stalls.length > 0) {
    out.push(
      `${stalls.length} window(s) were aborted and re-run on a fresh chain because anvil dropped a settlement transaction ` +
        '(accepted, then neither mined nor kept), leaving a nonce gap that stalls every later settlement of that account; ' +
        'neither the gateway nor the official facilitator re-sends a dropped transaction (see README.md):',
      ...stalls.map((i) => line(i, `; ${i.answered} answers before the abort`)),
    );
  }
  if (failed.length > 0) {
    out.push(
      `${failed.length} window(s) on PostgreSQL had payments that failed and were re-run on a fresh chain and database ` +
        '(the figures above are of windows where every payment succeeded):',
      ...failed.map((i) => line(i, '')),
    );
  }
  return out;
}

export function renderReport(r: RunResults): string {
  const lines: string[] = [];
  const push = (...l: string[]): void => {
    lines.push(...l);
  };
  const s = r.settings;
  push(
    '# Benchmark results',
    '',
    `Generated by \`npm run bench${s.quick ? ' -- --quick' : ''}\` on ${r.startedAt.toISOString()} in ${f0(r.seconds)} s, one run; ` +
      'how it measures and what the profiles showed: [README.md](README.md).' +
      (s.quick ? ' **Quick run: small windows, figures are indicative only.**' : ''),
    '',
    '## Targets (issues #5 and #11)',
    '',
    '| Target | Goal | Measured | |',
    '|---|---|---|---|',
    ...targets(r).map((t) => `| ${t.name} | ${t.goal} | ${t.measured} | ${verdict(t.met)} |`),
    '',
  );

  if (r.free) {
    push(
      '## Free route',
      '',
      `${s.freeConnections} connections, ${s.freeRounds} interleaved rounds of ${s.freeWindowSeconds} s windows per target; medians over rounds. ` +
        'CPU is the server process\'s own (user + system) per request; the upstream\'s is listed apart.',
      '',
      '| Body | Target | req/s | p50 ms | p99 ms | CPU µs/req | upstream CPU µs/req | vs bare proxy | vs upstream |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const body of ['small', 'big'] as const) {
      const bare = freeStats(r.free, 'bare', body);
      const upstream = freeStats(r.free, 'upstream', body);
      for (const target of ['upstream', 'bare', 'gateway'] as const) {
        const st = freeStats(r.free, target, body);
        push(
          `| ${body === 'small' ? 'small JSON' : '64 KiB'} | ${target === 'bare' ? 'fastify + @fastify/http-proxy' : target === 'upstream' ? 'upstream alone' : 'x402-gateway (free route)'} | ` +
            `${f0(st.rps)} | ${f2(st.p50)} | ${f2(st.p99)} | ${f0(st.cpuUs)} | ${target === 'upstream' ? '' : f0(st.upstreamCpuUs)} | ${x(st.rps / bare.rps)} | ${x(st.rps / upstream.rps)} |`,
        );
      }
    }
    push('');
  }

  if (r.paid) {
    push(
      '## Paid route, settlement on chain',
      '',
      `Every window on a fresh anvil (automine, chain id 8453, the token at Base's USDC address), warmed up the same way; ` +
        `${s.paidRounds} interleaved rounds (order reversed each round); pre-signed unique payments from the official v2 client. ` +
        `Requests per window: ${s.paidLevels.map((c) => `${s.paidAmounts[c] ?? '?'} at ${c}`).join(', ')}. ` +
        '"CPU" is the system\'s own processes per paid request: the gateway; or the express server plus the facilitator. ' +
        'The gateway also proxies to the upstream (its CPU listed apart); the official server answers itself. ' +
        'Gateways on PostgreSQL use a fresh database per window on one server for the run (`pool: 10`); the server\'s own CPU ' +
        `(postmaster, backends and workers, exited backends included) is listed apart${postgresCpuNote(r.paid)}. ` +
        `At ${s.pairConnections} callers, two gateways with the same config share one database and one settler key, the callers split evenly; ` +
        'their CPU is summed.',
      '',
      '| Callers | System | req/s | p50 ms | p99 ms | CPU ms/req | (server + facilitator) | PostgreSQL server ms/req | anvil ms/req | anvil share of all CPU | anvil cores busy | upstream ms/req | load generator ms/req | blocks at end |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const c of s.paidLevels) {
      for (const system of PAID_ROWS) {
        const st = paidStats(r.paid, system, c);
        if (st.n === 0) continue;
        push(
          `| ${c} | ${SYSTEM_NAMES[system]} | ${f1(st.rps)} | ${f1(st.p50)} | ${f1(st.p99)} | ${f2(st.cpu)} | ${system === 'official' ? `${f2(st.server)} + ${f2(st.facilitator)}` : ''} | ` +
            `${POSTGRES_SYSTEMS.has(system) ? f2(st.postgres) : ''} | ` +
            `${f2(st.anvil)} | ${f0(st.anvilShare * 100)} % | ${f2(st.anvilCores)} | ${system === 'official' ? '' : f2(st.upstream)} | ${f2(st.harness)} | ${f0(st.blocks)} |`,
        );
      }
    }
    push('', 'Ratios, gateway (settle after) against the official stack:', '', '| Callers | throughput | p50 latency | CPU per paid request |', '|---|---|---|---|');
    for (const c of s.paidLevels) {
      const gw = paidStats(r.paid, 'after', c);
      const of = paidStats(r.paid, 'official', c);
      push(`| ${c} | ${x(gw.rps / of.rps)} | ${x(gw.p50 / of.p50)} | ${x(gw.cpu / of.cpu)} |`);
    }
    push(...storeSection(r.paid, s), ...pairSection(r, r.paid), ...incidentLines(r.incidents ?? []));
    push(
      '',
      'Every window, in the order run:',
      '',
      '| Callers | Round | System | req/s | p50 ms | p99 ms | CPU ms/req | PostgreSQL server ms/req | anvil ms/req |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const w of r.paid) {
      push(
        `| ${w.connections} | ${w.round + 1} | ${w.system} | ${f1(w.load.rps)} | ${f1(w.load.p50)} | ${f1(w.load.p99)} | ${f2(w.cpu.server + w.cpu.facilitator)} | ` +
          `${w.cpu.postgres === undefined ? '' : f2(w.cpu.postgres)} | ${f2(w.cpu.anvil)} |`,
      );
    }
    push('');
  }

  if (r.verify) {
    const v = r.verify;
    push(
      '## Verification alone',
      '',
      `${v.payments} unique payments signed by the official v2 client, checked on one thread; chain reads answered by an in-process fake ` +
        `(they are I/O, measured above). Rates are per second of process CPU, median of the passes. Recovery backend: ${v.backend}.`,
      '',
      '| What | per second per core | CPU µs each |',
      '|---|---|---|',
      `| LocalExactEvmVerifier.verify (all checks, fresh signer cache) | ${f0(v.verifierPerSecond)} | ${f1(1e6 / v.verifierPerSecond)} |`,
      `| header decode + verify | ${f0(v.decodeAndVerifyPerSecond)} | ${f1(1e6 / v.decodeAndVerifyPerSecond)} |`,
      `| EIP-712 digest + recovery alone | ${f0(v.digestAndRecoverPerSecond)} | ${f1(1e6 / v.digestAndRecoverPerSecond)} |`,
      `| viem recoverTypedDataAddress (the path before) | ${f0(v.viemRecoverTypedDataPerSecond)} | ${f1(1e6 / v.viemRecoverTypedDataPerSecond)} |`,
      '',
    );
  }

  if (r.memory) {
    const m = r.memory;
    push(
      '## Memory',
      '',
      `The gateway process that served the free-route windows, warmed up with a tenth as many mixed requests again, then ` +
        `${m.requests.toLocaleString('en')} mixed requests at 32 connections ` +
        `(1 % paid and settled on chain: ${m.paid}; 39 % unpaid on a priced route; 60 % free, a twelfth of them 64 KiB) in ${f1(m.seconds)} s. ` +
        `Statuses: ${Object.entries(m.statuses)
          .map(([k, n]) => `${k}: ${n}`)
          .join(', ')}.`,
      '',
      'Read after a full garbage collection (the gateway runs with `--expose-gc` for this only). RSS also counts memory the ' +
        'allocator keeps after it was freed, so it moves by tens of MiB between samples while the heap stays put.',
      '',
      '| After requests | RSS MiB | heap used MiB | external MiB |',
      '|---|---|---|---|',
      ...m.samples.map(
        (sample) => `| ${sample.afterRequests.toLocaleString('en')} | ${mib(sample.rss)} | ${mib(sample.heapUsed)} | ${mib(sample.external)} |`,
      ),
      '',
    );
  }

  if (r.deferred) push(...renderDeferredSection(r.deferred, r.command ?? 'npm run bench', s.paidLevels));

  const mc = r.machine;
  push(
    '## Machine and versions',
    '',
    `- ${mc.cpu}, ${mc.cores} cores, ${mc.memoryGiB} GiB; Linux ${mc.kernel}; Node ${mc.node}`,
    `- Load average (1 min) at start ${f2(r.loadAverage.start)}, at end ${f2(r.loadAverage.end)}: every process of the run shares the ${mc.cores} cores with the load generator and anything else running.`,
    `- Commit ${mc.commit}`,
    `- ${Object.entries(mc.versions)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}`,
    '',
  );
  return lines.join('\n');
}
