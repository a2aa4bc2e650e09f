/**
 * bench/RESULTS.md from one run: the targets of issue #5 with their measured ratios first, then
 * every figure behind them. Medians are over the interleaved rounds; latency percentiles are of
 * all responses of a window.
 */
import type { FreeSample, FreeTarget } from './free-phase.js';
import type { Machine } from './machine.js';
import type { MemoryResults } from './memory-phase.js';
import type { PaidSample, PaidSystem, StallIncident } from './paid-phase.js';
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
  /** Paid windows aborted and re-run because anvil dropped a transaction. */
  readonly incidents?: readonly StallIncident[];
  readonly verify?: VerifyResults;
  readonly memory?: MemoryResults;
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
  const total = (s: PaidSample): number => s.cpu.server + s.cpu.facilitator + s.cpu.anvil + s.cpu.upstream + s.cpu.harness;
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
    blocks: median(of.map((s) => s.blocks)),
  };
}

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
    '## Targets (issue #5)',
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
        'The gateway also proxies to the upstream (its CPU listed apart); the official server answers itself.',
      '',
      '| Callers | System | req/s | p50 ms | p99 ms | CPU ms/req | (server + facilitator) | anvil ms/req | anvil share of all CPU | anvil cores busy | upstream ms/req | load generator ms/req | blocks at end |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    const names: Record<PaidSystem, string> = {
      after: 'x402-gateway, settle after',
      before: 'x402-gateway, settle before',
      official: 'official @x402/express + facilitator',
    };
    for (const c of s.paidLevels) {
      for (const system of ['after', 'before', 'official'] as const) {
        const st = paidStats(r.paid, system, c);
        push(
          `| ${c} | ${names[system]} | ${f1(st.rps)} | ${f1(st.p50)} | ${f1(st.p99)} | ${f2(st.cpu)} | ${system === 'official' ? `${f2(st.server)} + ${f2(st.facilitator)}` : ''} | ` +
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
    const incidents = r.incidents ?? [];
    push(
      '',
      incidents.length === 0
        ? 'No window had to be re-run.'
        : `${incidents.length} window(s) were aborted and re-run on a fresh chain because anvil dropped a settlement transaction ` +
            '(accepted, then neither mined nor kept), leaving a nonce gap that stalls every later settlement of that account; ' +
            'neither the gateway nor the official facilitator re-sends a dropped transaction (see README.md):',
      ...incidents.map((i) => `- c=${i.connections}, round ${i.round + 1}, ${i.system}: ${i.reason}; ${i.answered} answers before the abort`),
    );
    push('', 'Every window, in the order run:', '', '| Callers | Round | System | req/s | p50 ms | p99 ms | CPU ms/req | anvil ms/req |', '|---|---|---|---|---|---|---|---|');
    for (const w of r.paid) {
      push(`| ${w.connections} | ${w.round + 1} | ${w.system} | ${f1(w.load.rps)} | ${f1(w.load.p50)} | ${f1(w.load.p99)} | ${f2(w.cpu.server + w.cpu.facilitator)} | ${f2(w.cpu.anvil)} |`);
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
