/** The dashboard's data assembly: the ledger's hourly totals and rows, time and metric readings in, exact summary JSON out. */
import { describe, expect, it } from 'vitest';
import type { AssetConfig } from '../../src/config/types.js';
import { buildReceiptList, buildSummary, HOUR_MS, latency, receiptsLimit, windowStartMs, type SummaryInputs } from '../../src/http/dashboard-data.js';
import type { Receipt, ReceiptTotal } from '../../src/payments/ports.js';

const USDC = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
const NOW = Date.UTC(2026, 0, 2, 12, 30);
const asset = { id: 'usdc@base', address: USDC, decimals: 6, symbol: 'USDC', network: { caip2: 'eip155:8453' } } as unknown as AssetConfig;
const TX = `0x${'ab'.repeat(32)}`;

let seq = 0;
function receipt(over: Partial<Receipt>): Receipt {
  seq += 1;
  return {
    time: NOW - 1000, requestId: `r${seq}`, route: 'GET /a', method: 'GET', path: '/a', amount: '10000', asset: USDC.toLowerCase(), network: 'eip155:8453',
    payer: '0x1111111111111111111111111111111111111111', nonce: '', transaction: TX, status: 'settled', reason: '', ...over,
  };
}
/** One hour's group of rows, as `Ledger.hourlyTotals` gives it. */
function total(over: Partial<ReceiptTotal>): ReceiptTotal {
  return { hourStartMs: Math.floor((NOW - 1000) / HOUR_MS) * HOUR_MS, route: 'GET /a', network: 'eip155:8453', asset: USDC.toLowerCase(), status: 'settled', count: 1, atomic: '10000', ...over };
}
function inputs(totals: ReceiptTotal[], over: Partial<SummaryInputs> = {}): SummaryInputs {
  return {
    nowMs: NOW, totals, pending: [], failed: [], assets: [asset], pendingInStore: { count: 0, oldestTimeMs: undefined }, requests: [], settlementSeconds: [],
    settlers: [], configHash: 'h', lastReload: undefined, ...over,
  };
}

describe('buildSummary', () => {
  it('sums revenue per route and asset exactly, as bigint, in hourly buckets, counting settled and proof rows only', () => {
    const s = buildSummary(inputs([
      total({ atomic: '10000' }),
      total({ atomic: '9007199254740993', route: 'GET /b', hourStartMs: windowStartMs(NOW) }), // above 2^53: exact
      total({ atomic: '1', status: 'proof_accepted' }),
      total({ atomic: '5000', status: 'pending' }),
      total({ atomic: '5000', status: 'refused', count: 2 }),
      total({ atomic: '7', hourStartMs: windowStartMs(NOW) - HOUR_MS }), // before the window
    ]));
    expect(s.revenue.totals.map((t) => [t.asset, t.atomic, t.amount, t.count])).toEqual([['usdc@base', '9007199254750994', '9007199254.750994', 3]]);
    expect(s.revenue.byRoute.map((r) => [r.route, r.atomic, r.amount, r.count])).toEqual([
      ['GET /a', '10001', '0.010001', 2],
      ['GET /b', '9007199254740993', '9007199254.740993', 1],
    ]);
    const hourly = s.revenue.totals[0]?.hourly ?? [];
    expect(hourly).toHaveLength(24);
    expect(hourly[23]?.atomic).toBe('10001');
    expect(hourly[0]?.atomic).toBe('9007199254740993');
    expect(s.outcomes.receipts.counts).toMatchObject({ settled: 2, proof_accepted: 1, pending: 1, refused: 2, settle_failed: 0 });
    expect(s.window.since).toBe(new Date(Date.UTC(2026, 0, 1, 13)).toISOString());
    expect(s.window.rows).toBe(6);
  });

  it('lists pending and failed settlements with their age and explorer link', () => {
    const s = buildSummary(inputs([], {
      pending: [receipt({ status: 'pending', time: NOW - 90_000 })],
      failed: [receipt({ status: 'settle_failed', reason: 'boom', time: NOW - 5_000 })],
      pendingInStore: { count: 4, oldestTimeMs: NOW - 3_600_000 },
    }));
    expect(s.settlements.pending.map((p) => [p.ageSeconds, p.explorerUrl])).toEqual([[90, `https://basescan.org/tx/${TX}`]]);
    expect(s.settlements.failed.map((p) => [p.ageSeconds, p.reason])).toEqual([[5, 'boom']]);
    expect(s.settlements.pendingInStore).toEqual({ count: 4, oldestAgeSeconds: 3600 });
  });

  it('shows an asset the config no longer names by its address, in atomic units only', () => {
    const s = buildSummary(inputs([total({ asset: '0x2222222222222222222222222222222222222222' })]));
    expect(s.revenue.totals.map((t) => [t.asset, t.atomic, t.amount])).toEqual([['0x2222222222222222222222222222222222222222', '10000', null]]);
  });

  it('sums requests by outcome, formats settler gas in ETH and carries the config hash and last reload', () => {
    const s = buildSummary(inputs([], {
      requests: [{ labels: { route: 'a', outcome: 'paid' }, value: 2 }, { labels: { route: 'b', outcome: 'paid' }, value: 3 }, { labels: { route: 'a', outcome: 'challenged' }, value: 1 }],
      settlers: [{ network: 'base', address: '0xabc', balanceWei: '1500000000000000000', minBalanceWei: '2000000000000000', low: false }],
      lastReload: { atMs: NOW, result: 'invalid', hash: 'h', problems: ['x'] },
    }));
    expect(s.outcomes.requests.counts).toEqual({ paid: 5, challenged: 1 });
    expect(s.settlers[0]).toMatchObject({ balance: '1.5', minBalance: '0.002' });
    expect(s.config).toEqual({ hash: 'h', lastReload: { atMs: NOW, at: new Date(NOW).toISOString(), result: 'invalid', hash: 'h', problems: ['x'] } });
  });
});

describe('latency', () => {
  it('merges modes and estimates quantiles inside buckets', () => {
    const b = (le: string, value: number, mode = 'local') => ({ labels: { le, mode }, value, metricName: 'x_bucket' });
    const l = latency([b('0.1', 2), b('1', 4), b('+Inf', 4), b('0.1', 0, 'facilitator'), b('1', 0, 'facilitator'), b('+Inf', 0, 'facilitator'),
      { labels: { mode: 'local' }, value: 2, metricName: 'x_sum' }, { labels: { mode: 'local' }, value: 4, metricName: 'x_count' }]);
    expect(l).toMatchObject({ count: 4, meanSeconds: 0.5, p50Seconds: 0.1, buckets: [{ le: '0.1', count: 2 }, { le: '1', count: 2 }, { le: '+Inf', count: 0 }] });
    expect(l.p95Seconds).toBeCloseTo(0.1 + 0.9 * 0.9);
    expect(latency([])).toMatchObject({ count: 0, meanSeconds: null, p50Seconds: null });
  });
});

describe('buildReceiptList and receiptsLimit', () => {
  it('lists newest first with explorer links only for known chains and real hashes', () => {
    const list = buildReceiptList([receipt({ time: 1 }), receipt({ time: 2, network: 'eip155:84532' }), receipt({ time: 3, network: 'eip155:31337' }), receipt({ time: 4, transaction: '' })], [asset]);
    expect(list.receipts.map((r) => r.explorerUrl)).toEqual([null, null, `https://sepolia.basescan.org/tx/${TX}`, `https://basescan.org/tx/${TX}`]);
  });

  it('takes ?limit= as a whole number within bounds', () => {
    expect([receiptsLimit(undefined), receiptsLimit('10'), receiptsLimit('0'), receiptsLimit('99999'), receiptsLimit('-1'), receiptsLimit('1e3')]).toEqual([50, 10, 1, 500, 50, 50]);
  });
});
