/**
 * The admin dashboard's routes: the page at `GET /dashboard` and the JSON behind it under
 * `/admin/api/`. Reads the ledger and the metrics registry, then hands values to the pure
 * assembly in dashboard-data.ts. The admin listener's auth hook (admin-auth.ts) guards all three.
 */
import type { FastifyInstance } from 'fastify';
import type { AssetConfig } from '../config/types.js';
import type { GatewayMetrics } from '../metrics.js';
import type { Ledger } from '../payments/ports.js';
import { buildReceiptList, buildSummary, DASHBOARD_SETTLEMENT_ROWS, receiptsLimit, windowStartMs, type LastReload, type SettlerBalanceDetail } from './dashboard-data.js';
import { DASHBOARD_HEADERS, DASHBOARD_HTML } from './dashboard-page.js';
import { DASHBOARD_PATH } from './admin-auth.js';

export interface DashboardDeps {
  readonly ledger: Pick<Ledger, 'receipts' | 'hourlyTotals' | 'pendingReceipts'>;
  readonly metrics: GatewayMetrics;
  readonly nowMs: () => number;
  /** The active config's assets: receipts name a token address, the page its asset id and decimals. */
  readonly assets: () => Iterable<AssetConfig>;
  readonly configHash: () => string;
  readonly lastReload: () => LastReload | undefined;
  readonly settlers: () => readonly SettlerBalanceDetail[];
}

export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  app.get(DASHBOARD_PATH, async (_request, reply) => reply.headers(DASHBOARD_HEADERS).send(DASHBOARD_HTML));

  app.get('/admin/api/summary', async (_request, reply) => {
    const nowMs = deps.nowMs();
    const since = windowStartMs(nowMs);
    const [totals, pending, failed, pendingInStore, requests, settlementSeconds] = await Promise.all([
      deps.ledger.hourlyTotals(since),
      deps.ledger.receipts({ since, status: 'pending', limit: DASHBOARD_SETTLEMENT_ROWS }),
      deps.ledger.receipts({ since, status: 'settle_failed', limit: DASHBOARD_SETTLEMENT_ROWS }),
      deps.ledger.pendingReceipts().catch(() => undefined),
      deps.metrics.requests.get(),
      deps.metrics.settlementSeconds.get(),
    ]);
    const summary = buildSummary({
      nowMs,
      totals,
      pending,
      failed,
      assets: deps.assets(),
      pendingInStore,
      requests: requests.values,
      settlementSeconds: settlementSeconds.values,
      settlers: deps.settlers(),
      configHash: deps.configHash(),
      lastReload: deps.lastReload(),
    });
    return reply.header('cache-control', 'no-store').send(summary);
  });

  app.get('/admin/api/receipts', async (request, reply) => {
    const limit = receiptsLimit((request.query as Record<string, unknown> | undefined)?.['limit']);
    const receipts = await deps.ledger.receipts({ limit });
    return reply.header('cache-control', 'no-store').send(buildReceiptList(receipts, deps.assets()));
  });
}
