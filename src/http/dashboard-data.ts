/**
 * What the admin dashboard shows, assembled from values: the ledger's hourly totals and settlement
 * rows, the time, and a few readings of the metrics registry, in; plain JSON out. Pure (no
 * fastify, no clock, no store), so every figure is tested with plain calls.
 *
 * Where the figures come from:
 * - Revenue, outcomes by receipt status, and pending or failed settlements come from the
 *   ledger's receipt rows: exact, and store-wide (every replica's rows). The store counts and sums
 *   them per hour (`Ledger.hourlyTotals`), so a busy day costs a read of its hourly groups, not of
 *   every row. Amounts are atomic decimal strings summed as bigint and formatted with the asset's
 *   decimals; never a float.
 * - Requests by outcome (free, challenged, paid, ...) come from the metrics registry
 *   (`x402_gateway_requests_total`): this replica since it started. Free and challenged requests
 *   write no receipt, so the ledger cannot count them.
 * - Settlement latency comes from the `x402_gateway_settlement_duration_seconds` histogram (this
 *   replica): a row keeps one time only, so the ledger cannot time a settlement. Seconds are not
 *   money; floats are fine there.
 */
import { explorerTxUrl } from '../config/known-networks.js';
import type { AssetConfig } from '../config/types.js';
import { HOUR_MS, type Receipt, type ReceiptStatus, type ReceiptTotal } from '../payments/ports.js';
import { atomicToDecimal } from '../pricing.js';

export { HOUR_MS };
/** Hourly buckets the revenue chart shows: the current hour and the 23 before it. */
export const DASHBOARD_HOURS = 24;
/** Rows listed in each of the pending and failed settlement tables. */
export const DASHBOARD_SETTLEMENT_ROWS = 50;
export const DEFAULT_RECEIPTS_LIMIT = 50;
export const MAX_RECEIPTS_LIMIT = 500;
/** Gas is in the chain's native token: 18 decimals on every EVM chain x402 pays on. */
const NATIVE_DECIMALS = 18;

/** Receipt statuses whose amount was received: the revenue. `pending` may yet be; it is listed apart. */
const REVENUE_STATUSES: ReadonlySet<ReceiptStatus> = new Set(['settled', 'proof_accepted']);
const ALL_STATUSES: readonly ReceiptStatus[] = ['settled', 'proof_accepted', 'pending', 'settle_failed', 'refused', 'not_charged', 'proof_refused', 'redelivered', 'queued'];

/** A settling account's gas balance, as /readyz and the dashboard show it: wei as decimal strings. */
export interface SettlerBalanceDetail {
  readonly network: string;
  readonly address: string;
  readonly balanceWei: string;
  readonly minBalanceWei?: string;
  readonly low: boolean;
}

/** One reading of a prom-client metric: `metric.get().values`. */
export interface MetricSample {
  readonly labels: Readonly<Record<string, string | number | undefined>>;
  readonly value: number;
  readonly metricName?: string;
}

/** The result of the last config reload, with when it happened (unix ms); undefined before the first. */
export interface LastReload {
  readonly atMs: number;
  readonly result: string;
  readonly hash: string;
  readonly problems?: readonly string[];
}

export interface SummaryInputs {
  readonly nowMs: number;
  /** `ledger.hourlyTotals(windowStartMs(nowMs))`. */
  readonly totals: readonly ReceiptTotal[];
  /** The newest `pending` and `settle_failed` rows of the window, newest first, as listed (the store reads DASHBOARD_SETTLEMENT_ROWS of each). */
  readonly pending: readonly Receipt[];
  readonly failed: readonly Receipt[];
  readonly assets: Iterable<AssetConfig>;
  /** `ledger.pendingReceipts()`, store-wide; undefined when the store did not answer. */
  readonly pendingInStore: { readonly count: number; readonly oldestTimeMs: number | undefined } | undefined;
  /** `x402_gateway_requests_total` values. */
  readonly requests: readonly MetricSample[];
  /** `x402_gateway_settlement_duration_seconds` values (buckets, sum, count). */
  readonly settlementSeconds: readonly MetricSample[];
  readonly settlers: readonly SettlerBalanceDetail[];
  readonly configHash: string;
  readonly lastReload: LastReload | undefined;
}

/** An asset as the dashboard names it; `decimals` undefined for an asset the config no longer lists. */
interface AssetLabel {
  readonly asset: string;
  readonly network: string;
  readonly symbol: string;
  readonly decimals: number | undefined;
}

/** An amount both ways: exact atomic units, and formatted with the asset's decimals (null when unknown). */
export interface Money {
  readonly atomic: string;
  readonly amount: string | null;
}

/** The first millisecond the summary covers: the start of the hour 23 hours before the current one. */
export function windowStartMs(nowMs: number): number {
  return Math.floor(nowMs / HOUR_MS) * HOUR_MS - (DASHBOARD_HOURS - 1) * HOUR_MS;
}

/** The dashboard's summary: `GET /admin/api/summary`. */
export function buildSummary(input: SummaryInputs) {
  const start = windowStartMs(input.nowMs);
  const labelOf = assetLabeller(input.assets);
  // A replica whose clock runs ahead may have written rows "after" now: they go in the last hour.
  const inWindow = input.totals.filter((t) => t.hourStartMs >= start);

  const byRoute = new Map<string, { route: string; label: AssetLabel; hourly: bigint[]; count: number }>();
  const byAsset = new Map<string, { label: AssetLabel; hourly: bigint[]; count: number }>();
  const statuses = new Map<ReceiptStatus, number>(ALL_STATUSES.map((s) => [s, 0]));
  for (const t of inWindow) {
    statuses.set(t.status, (statuses.get(t.status) ?? 0) + t.count);
    const atomic = atomicOf(t.atomic);
    if (!REVENUE_STATUSES.has(t.status) || atomic === undefined) continue;
    const label = labelOf(t.network, t.asset);
    const hour = Math.min(DASHBOARD_HOURS - 1, Math.floor((t.hourStartMs - start) / HOUR_MS));
    const routeKey = `${t.route}\u0000${label.network}\u0000${label.asset}`;
    const assetKey = `${label.network}\u0000${label.asset}`;
    const routeRow = byRoute.get(routeKey) ?? { route: t.route, label, hourly: zeros(), count: 0 };
    const assetRow = byAsset.get(assetKey) ?? { label, hourly: zeros(), count: 0 };
    routeRow.hourly[hour] = (routeRow.hourly[hour] ?? 0n) + atomic;
    assetRow.hourly[hour] = (assetRow.hourly[hour] ?? 0n) + atomic;
    routeRow.count += t.count;
    assetRow.count += t.count;
    byRoute.set(routeKey, routeRow);
    byAsset.set(assetKey, assetRow);
  }

  const settlementRows = (rows: readonly Receipt[]) =>
    rows.map((r) => ({ ...receiptView(r, labelOf), ageSeconds: Math.max(0, Math.floor((input.nowMs - r.time) / 1000)) }));

  return {
    generatedAt: new Date(input.nowMs).toISOString(),
    window: {
      hours: DASHBOARD_HOURS,
      since: new Date(start).toISOString(),
      hourStarts: Array.from({ length: DASHBOARD_HOURS }, (_, i) => new Date(start + i * HOUR_MS).toISOString()),
      rows: inWindow.reduce((n, t) => n + t.count, 0),
    },
    config: { hash: input.configHash, lastReload: input.lastReload === undefined ? null : { ...input.lastReload, at: new Date(input.lastReload.atMs).toISOString() } },
    revenue: {
      source: 'ledger receipts (settled and proof_accepted rows), store-wide',
      totals: [...byAsset.values()].sort(byLabel).map((a) => ({ ...a.label, count: a.count, ...money(sum(a.hourly), a.label), hourly: a.hourly.map((h) => money(h, a.label)) })),
      byRoute: [...byRoute.values()]
        .sort((a, b) => a.route.localeCompare(b.route) || byLabel(a, b))
        .map((r) => ({ route: r.route, ...r.label, count: r.count, ...money(sum(r.hourly), r.label), hourly: r.hourly.map((h) => money(h, r.label)) })),
    },
    outcomes: {
      receipts: { source: 'ledger receipts in the window, by status, store-wide', counts: Object.fromEntries(statuses) },
      requests: { source: 'x402_gateway_requests_total, this replica since it started', counts: requestCounts(input.requests) },
    },
    settlementLatency: { source: 'x402_gateway_settlement_duration_seconds, this replica since it started', ...latency(input.settlementSeconds) },
    settlements: {
      pending: settlementRows(input.pending),
      failed: settlementRows(input.failed),
      pendingInStore:
        input.pendingInStore === undefined
          ? null
          : {
              count: input.pendingInStore.count,
              oldestAgeSeconds: input.pendingInStore.oldestTimeMs === undefined ? null : Math.max(0, Math.floor((input.nowMs - input.pendingInStore.oldestTimeMs) / 1000)),
            },
    },
    settlers: input.settlers.map((s) => ({
      ...s,
      balance: atomicToDecimal(BigInt(s.balanceWei), NATIVE_DECIMALS),
      ...(s.minBalanceWei === undefined ? {} : { minBalance: atomicToDecimal(BigInt(s.minBalanceWei), NATIVE_DECIMALS) }),
    })),
  };
}

export type DashboardSummary = ReturnType<typeof buildSummary>;

/** The receipts table: `GET /admin/api/receipts?limit=N`, newest first, with explorer links. */
export function buildReceiptList(receipts: readonly Receipt[], assets: Iterable<AssetConfig>) {
  const labelOf = assetLabeller(assets);
  return { receipts: [...receipts].sort((a, b) => b.time - a.time).map((r) => receiptView(r, labelOf)) };
}

/** `?limit=` as given by the caller: a whole number in 1..MAX_RECEIPTS_LIMIT, else the default. */
export function receiptsLimit(raw: unknown): number {
  if (typeof raw !== 'string' || !/^\d{1,6}$/.test(raw)) return DEFAULT_RECEIPTS_LIMIT;
  return Math.min(MAX_RECEIPTS_LIMIT, Math.max(1, Number(raw)));
}

function receiptView(r: Receipt, labelOf: (network: string, address: string) => AssetLabel) {
  const label = labelOf(r.network, r.asset);
  const atomic = atomicOf(r.amount);
  return {
    time: new Date(r.time).toISOString(),
    requestId: r.requestId,
    route: r.route,
    method: r.method,
    path: r.path,
    status: r.status,
    reason: r.reason,
    ...label,
    ...(atomic === undefined ? { atomic: '', amount: null } : money(atomic, label)),
    payer: r.payer,
    transaction: r.transaction,
    explorerUrl: r.transaction === '' ? null : (explorerTxUrl(r.network, r.transaction) ?? null),
  };
}

/** Receipts name an asset by network and token address; the dashboard by the config's id. */
function assetLabeller(assets: Iterable<AssetConfig>): (network: string, address: string) => AssetLabel {
  const known = new Map<string, AssetLabel>();
  for (const a of assets) {
    known.set(`${a.network.caip2}:${a.address.toLowerCase()}`, { asset: a.id, network: a.network.caip2, symbol: a.symbol, decimals: a.decimals });
  }
  return (network, address) => known.get(`${network}:${address.toLowerCase()}`) ?? { asset: address, network, symbol: '', decimals: undefined };
}

function money(atomic: bigint, label: AssetLabel): Money {
  return { atomic: atomic.toString(), amount: label.decimals === undefined ? null : atomicToDecimal(atomic, label.decimals) };
}

/** A row's amount as bigint; undefined for the empty amount of a refusal that named none. */
function atomicOf(amount: string): bigint | undefined {
  return /^\d{1,78}$/.test(amount) ? BigInt(amount) : undefined;
}

const zeros = (): bigint[] => Array.from({ length: DASHBOARD_HOURS }, () => 0n);
const sum = (values: readonly bigint[]): bigint => values.reduce((a, b) => a + b, 0n);
const byLabel = (a: { label: AssetLabel }, b: { label: AssetLabel }) => a.label.network.localeCompare(b.label.network) || a.label.asset.localeCompare(b.label.asset);

/** Requests by outcome, summed over routes. */
function requestCounts(samples: readonly MetricSample[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of samples) {
    const outcome = String(s.labels['outcome'] ?? 'unknown');
    counts[outcome] = (counts[outcome] ?? 0) + s.value;
  }
  return counts;
}

/**
 * Count, mean and estimated quantiles of the settlement histogram, over all modes. Quantiles are
 * interpolated inside the bucket they fall in, as Prometheus's histogram_quantile does, so they
 * are estimates to the bucket's width; `buckets` holds the counts themselves.
 */
export function latency(samples: readonly MetricSample[]) {
  const cumulative = new Map<number, number>();
  let count = 0;
  let total = 0;
  for (const s of samples) {
    if (s.metricName?.endsWith('_bucket')) {
      const le = s.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels['le']);
      cumulative.set(le, (cumulative.get(le) ?? 0) + s.value);
    } else if (s.metricName?.endsWith('_count')) count += s.value;
    else if (s.metricName?.endsWith('_sum')) total += s.value;
  }
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const quantile = (q: number): number | null => {
    if (count === 0) return null;
    const rank = q * count;
    let lower = 0;
    let below = 0;
    for (const le of bounds) {
      const upTo = cumulative.get(le) ?? 0;
      if (upTo >= rank) {
        if (le === Number.POSITIVE_INFINITY) return lower;
        const inBucket = upTo - below;
        return inBucket === 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket;
      }
      lower = le;
      below = upTo;
    }
    return lower;
  };
  let previous = 0;
  return {
    count,
    meanSeconds: count === 0 ? null : total / count,
    p50Seconds: quantile(0.5),
    p95Seconds: quantile(0.95),
    buckets: bounds.map((le) => {
      const upTo = cumulative.get(le) ?? 0;
      const row = { le: le === Number.POSITIVE_INFINITY ? '+Inf' : String(le), count: upTo - previous };
      previous = upTo;
      return row;
    }),
  };
}
