/**
 * The admin listener: health, readiness, Prometheus metrics, config reload and the dashboard.
 * Bound to loopback by default and never on the public port, so a caller cannot probe, scrape or
 * reload it through the gateway; beyond loopback `admin.token` guards it (admin-auth.ts).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../metrics.js';
import { adminAuthHook, type AdminTokens } from './admin-auth.js';
import { registerDashboard, type DashboardDeps } from './dashboard.js';
import type { SettlerBalanceDetail } from './dashboard-data.js';

export type ReloadResult =
  | { readonly result: 'applied' | 'unchanged'; readonly hash: string }
  | { readonly result: 'invalid' | 'error'; readonly hash: string; readonly problems: readonly string[] };

export interface AdminDeps {
  readonly logger: FastifyBaseLogger;
  readonly metrics: GatewayMetrics;
  /** Ready to take traffic: config loaded, listeners up, not draining. */
  readonly isReady: () => boolean;
  /** The active config's hash. */
  readonly configHash: () => string;
  readonly reload: () => Promise<ReloadResult>;
  /** The ledger as /readyz names it, and whether it answers. */
  readonly ledger: LedgerProbe;
  /** Each settling account's latest gas balance, for /readyz (a low one does not make it unready). */
  readonly settlers?: () => readonly SettlerBalanceDetail[];
  /** Tokens from `admin.token` / `admin.metricsToken`; none: open (loopback, or allowUnauthenticated). */
  readonly tokens?: AdminTokens;
  /** The dashboard's data sources; without them there is no dashboard. */
  readonly dashboard?: Omit<DashboardDeps, 'metrics' | 'configHash' | 'settlers'>;
}

/** Kept beside the dashboard's data (which shows it too), so the two modules import in one direction. */
export type { SettlerBalanceDetail } from './dashboard-data.js';

export interface LedgerProbe {
  /** Where receipts go, without credentials: `postgres://db:5432/gateway`, `sqlite:./x402-gateway.db`. */
  readonly name: string;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
}

/** How long /readyz waits for the ledger before calling it unreachable. */
export const LEDGER_PROBE_TIMEOUT_MS = 1_000;

export type LedgerHealth = { readonly reachable: true } | { readonly reachable: false; readonly error: string };

/** Asks the ledger, bounded: a store that does not answer within LEDGER_PROBE_TIMEOUT_MS is unreachable. */
export async function probeLedger(ledger: LedgerProbe): Promise<LedgerHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${LEDGER_PROBE_TIMEOUT_MS} ms`)), LEDGER_PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([ledger.ping(), timeout]);
    return { reachable: true };
  } catch (err) {
    return { reachable: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export function buildAdmin(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) });
  if (deps.tokens) app.addHook('onRequest', adminAuthHook(deps.tokens));
  app.get('/healthz', async () => ({ status: 'ok' }));
  // An unreachable ledger does not make the replica unready: the store is shared, so taking every
  // replica out of service would stop the free routes too, while priced routes already refuse
  // with 503 and Retry-After. The body names the store and says whether it answers.
  app.get('/readyz', async (_request, reply) => {
    const ready = deps.isReady();
    const health = await probeLedger(deps.ledger);
    deps.metrics.ledgerUp.set(health.reachable ? 1 : 0);
    // A settler low on gas still settles until the balance is gone: ready, with the detail.
    const settlers = deps.settlers?.() ?? [];
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not ready',
      config: deps.configHash(),
      ledger: { store: deps.ledger.name, ...health },
      ...(settlers.length > 0 ? { settlers } : {}),
    });
  });
  app.get('/metrics', async (_request, reply) => {
    deps.metrics.ledgerUp.set((await probeLedger(deps.ledger)).reachable ? 1 : 0);
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.post('/admin/reload', async (_request, reply) => {
    const result = await deps.reload();
    return reply.code(result.result === 'applied' || result.result === 'unchanged' ? 200 : 422).send(result);
  });
  if (deps.dashboard) {
    registerDashboard(app, { ...deps.dashboard, metrics: deps.metrics, configHash: deps.configHash, settlers: () => deps.settlers?.() ?? [] });
  }
  return app;
}
