/**
 * The section of bench/RESULTS.md for the 2 s block windows (issue #12): the targets with their
 * ratios against the official stack measured in the same run, then the figures behind them.
 * Medians over rounds; latency percentiles are of all responses of a window.
 */
import type { BlockTimeSystem, DeferredResults, DeferredSample } from './deferred-phase.js';
import { median } from './stats.js';

const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : 'n/a');
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : 'n/a');
const x = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(3)}x` : 'n/a');
const verdict = (met: boolean): string => (met ? '**met**' : '**not met**');

const NAMES: Record<BlockTimeSystem, string> = {
  deferred: 'x402-gateway, settlement: deferred',
  after: 'x402-gateway, settlement: after',
  official: 'official @x402/express + facilitator',
};

function stats(samples: readonly DeferredSample[], system: BlockTimeSystem, connections: number) {
  const of = samples.filter((s) => s.system === system && s.connections === connections);
  return {
    n: of.length,
    requests: of.reduce((sum, s) => sum + s.load.requests, 0),
    rps: median(of.map((s) => s.load.rps)),
    p50: median(of.map((s) => s.load.p50)),
    p99: median(of.map((s) => s.load.p99)),
    cpu: median(of.map((s) => s.cpu.server + s.cpu.facilitator)),
    anvil: median(of.map((s) => s.cpu.anvil)),
  };
}

/** Settlement transactions and their gas over every window of a system (warm-ups included). */
function onChain(samples: readonly DeferredSample[], system: BlockTimeSystem) {
  const txs = samples.filter((s) => s.system === system).flatMap((s) => s.settlements);
  const payments = txs.reduce((sum, t) => sum + t.payments, 0);
  const gas = txs.reduce((sum, t) => sum + t.gasUsed, 0n);
  const direct = txs.filter((t) => t.direct && t.payments === 1);
  return {
    txs: txs.length,
    payments,
    perHundred: (txs.length * 100) / payments,
    gasPerPayment: Number(gas) / payments,
    direct: direct.length,
    directGas: direct.length === 0 ? Number.NaN : Number(direct.reduce((sum, t) => sum + t.gasUsed, 0n)) / direct.length,
    batchSizes: txs.filter((t) => !t.direct).map((t) => t.payments),
    txsOf: txs,
  };
}

export function renderDeferredSection(r: DeferredResults, command: string, levels: readonly number[]): string[] {
  const s = r.samples;
  const full = r.terms.maxSize;
  const deferredTxs = onChain(s, 'deferred');
  const after = onChain(s, 'after');
  const official = onChain(s, 'official');
  const fullBatches = deferredTxs.txsOf.filter((t) => !t.direct && t.payments === full);
  const fullBatchGas = fullBatches.length === 0 ? Number.NaN : Number(fullBatches.reduce((sum, t) => sum + t.gasUsed, 0n)) / (fullBatches.length * full);
  const top = Math.max(...levels);
  const worstLatency = Math.max(...levels.map((c) => stats(s, 'deferred', c).p50 / stats(s, 'official', c).p50));
  const throughput = stats(s, 'deferred', top).rps / stats(s, 'official', top).rps;
  const gasRatio = fullBatchGas / after.directGas;
  const sizes = [...deferredTxs.batchSizes].sort((a, b) => b - a);
  const out: string[] = [
    `## Deferred settlement on 2 s blocks (issue #12)`,
    '',
    `Measured by \`${command}\`. Every window on a fresh anvil with \`--block-time ${r.blockTimeSeconds}\` (a block every ${r.blockTimeSeconds} s, like Base; ` +
      'chain id 8453, the test token at Base\'s USDC address, Multicall3 at its canonical address). One gateway config for both gateway systems ' +
      `(SQLite ledger, local settlement with its own key, \`settle.batch: { maxSize: ${r.terms.maxSize}, maxWaitMs: ${r.terms.maxWaitMs} }\`, ` +
      `\`defaults.deferred.maxUnsettledPerPayer: "${r.terms.maxUnsettledPerPayer}"\`: all payments come from one payer, and the default $0.10 ` +
      'would send all but ten of them synchronous); the route is the only difference. Payments pre-signed by the official v2 client, one fresh ' +
      `EIP-3009 nonce each; ${r.warmup} warm-up payments per window; the order of systems reversed every round. ` +
      'After a deferred window the harness waits until the payee holds every payment served (the batcher drained the queue), then reads ' +
      'every settlement transaction of the chain: gasUsed from its receipt, payments from the token\'s AuthorizationUsed events. ' +
      'The gateway, the official server and facilitator, anvil and the load generator share the machine\'s cores (the load average ' +
      'before and after is under Machine and versions), so absolute figures move between runs; the ratios are of systems measured ' +
      'side by side in this one run.',
    '',
    '| Target | Goal | Measured | |',
    '|---|---|---|---|',
    `| Deferred: median latency of a paid request | <= 0.05x official | ${x(worstLatency)} at worst (${levels
      .map((c) => `c=${c}: ${x(stats(s, 'deferred', c).p50 / stats(s, 'official', c).p50)}`)
      .join(', ')}) | ${verdict(worstLatency <= 0.05)} |`,
    `| Deferred: throughput at ${top} callers | >= 10x official | ${x(throughput)} (${f1(stats(s, 'deferred', top).rps)} vs ${f1(stats(s, 'official', top).rps)} req/s) | ${verdict(throughput >= 10)} |`,
    `| Gas per payment, batches of ${full} vs one transaction per payment | <= 0.6x | ${x(gasRatio)} (${f0(fullBatchGas)} gas per payment in ${fullBatches.length} batches of ${full}; ` +
      `${f0(after.directGas)} per transferWithAuthorization transaction of the gateway settling after, ${f0(official.directGas)} of the official facilitator) | ${verdict(gasRatio <= 0.6)} |`,
    `| Settlement transactions per 100 payments | (reported) | deferred ${f2(deferredTxs.perHundred)}, after ${f2(after.perHundred)}, official ${f2(official.perHundred)} | |`,
    '',
    '| Callers | System | paid requests | req/s | p50 ms | p99 ms | p50 vs official | p99 vs official | req/s vs official | CPU ms/req | server cores busy | anvil ms/req |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of levels) {
    const of = stats(s, 'official', c);
    for (const system of ['deferred', 'after', 'official'] as const) {
      const st = stats(s, system, c);
      if (st.n === 0) continue;
      out.push(
        `| ${c} | ${NAMES[system]} | ${st.requests} | ${f1(st.rps)} | ${f1(st.p50)} | ${f1(st.p99)} | ${x(st.p50 / of.p50)} | ${x(st.p99 / of.p99)} | ${f2(st.rps / of.rps)}x | ${f2(st.cpu)} | ${f2((st.cpu * st.rps) / 1000)} | ${f2(st.anvil)} |`,
      );
    }
  }
  out.push(
    '',
    'CPU is over the measured window only (the gateway, or the express server plus the facilitator): a deferred gateway does part of its ' +
      'settlement work (batches) after the window, which this column does not see. p99 of the synchronous systems at 1 caller is of few requests.',
    '',
    'On chain, over every window of each system (warm-ups included):',
    '',
    '| System | payments | settlement transactions | per 100 payments | gas per payment (all) | one-payment transactions | gas each |',
    '|---|---|---|---|---|---|---|',
    ...(['deferred', 'after', 'official'] as const).map((system) => {
      const t = onChain(s, system);
      return `| ${NAMES[system]} | ${t.payments} | ${t.txs} | ${f2(t.perHundred)} | ${f0(t.gasPerPayment)} | ${t.direct} | ${f0(t.directGas)} |`;
    }),
    '',
    `Deferred batch sizes (payments per Multicall3 transaction), largest first: ${sizes.join(', ')}. ` +
      `Gas per payment in full batches of ${full}: ${f0(fullBatchGas)} (${f3(gasRatio)}x one transferWithAuthorization transaction of the gateway). ` +
      `A deferred payment settled synchronously (exposure cap, expiring authorization) would show as a one-payment transaction: ${deferredTxs.direct} in this run.`,
    '',
  );
  if (r.incidents.length > 0) {
    out.push('Windows re-run on a fresh chain (anvil dropped a settlement transaction, see README.md):', ...r.incidents.map((i) => `- c=${i.connections}, round ${i.round + 1}, ${i.system}: ${i.reason}`), '');
  }
  out.push(
    'Every window, in the order run:',
    '',
    '| Callers | Round | System | paid requests | req/s | p50 ms | p99 ms | settlement txs (chain, warm-up included) | queue drained after (s) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...s.map(
      (w) =>
        `| ${w.connections} | ${w.round + 1} | ${w.system} | ${w.load.requests} | ${f1(w.load.rps)} | ${f1(w.load.p50)} | ${f1(w.load.p99)} | ${w.settlements.length} for ${w.payments} | ${w.system === 'deferred' ? f1(w.drainSeconds) : ''} |`,
    ),
    '',
  );
  return out;
}
