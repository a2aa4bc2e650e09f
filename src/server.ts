/**
 * The process root: what lives as long as the process (ledger, payment backends, metrics, the
 * public listener, the admin app, the reloader) and its start-up and shutdown. Used by
 * `x402-gateway start`, the demo and the tests alike.
 *
 * One config's app is gateway.ts; the socket, reload swaps and drain are http/listener.ts;
 * reading and applying a changed file is reload.ts; the payment adapters are payment-backends.ts.
 * Drain (SIGTERM): readiness turns false at once, then the listener drains (settlements whose
 * caller has gone included) and the ledger is closed last.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { getAddress } from 'viem';
import type { Config } from './config/types.js';
import { buildGateway } from './gateway.js';
import { buildAdmin, type ReloadResult, type SettlerBalanceDetail } from './http/admin.js';
import type { LastReload } from './http/dashboard-data.js';
import { PublicListener } from './http/listener.js';
import { observeLedger } from './ledger/observed-ledger.js';
import { ledgerName, openLedger } from './ledger/open-ledger.js';
import { FailedPaymentAttempts } from './limits/failed-attempts.js';
import { LedgerPruner } from './ledger/retention.js';
import type { SettlerBalanceReading } from './payments/exact-evm/settler-balance.js';
import { TokenBuckets } from './limits/token-buckets.js';
import { createLogger } from './log.js';
import { GatewayMetrics } from './metrics.js';
import { PaymentBackendCache, type PaymentBackendSource, type SettlementWiring } from './payment-backends.js';
import { credentialRefusals, type FacilitatorSupportReport } from './payments/facilitator/support.js';
import { secp256k1Backend } from './payments/exact-evm/secp256k1-native.js';
import { WorkInFlight } from './payments/work-in-flight.js';
import { systemClock, type Clock, type DeferredItem, type DeferredOutcome, type Ledger, type OpenSettlement, type PendingReceipt, type SettlementOutcome } from './payments/ports.js';
import type { AuthorizationOutcome } from './payments/exact-evm/authorization-reconciler.js';
import { makeReloader, watchConfig } from './reload.js';
import { evmChainId } from './protocol/types.js';

export interface RunningGateway {
  /** The active config (changes on reload). */
  readonly config: Config;
  readonly admin: FastifyInstance;
  readonly ledger: Ledger;
  readonly metrics: GatewayMetrics;
  /** `http://host:port` of the public listener. */
  readonly url: string;
  readonly adminUrl: string;
  /** Re-reads the config file and swaps it in if valid. */
  reload(): Promise<ReloadResult>;
  /** Graceful drain, then close everything. Idempotent. */
  close(): Promise<void>;
}

export interface RunOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Overrides config.ledger (tests pass their own store). */
  readonly ledger?: Ledger;
  /** The file the config came from, for reloads (and watching, unless `reload.watch` is false). */
  readonly configPath?: string;
  /** Environment for `${VAR}` on reload. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The payment adapters; PaymentBackendCache (real chains and facilitators) by default. Tests pass fakes. */
  readonly backends?: PaymentBackendSource;
}

export async function runGateway(initial: Config, options: RunOptions = {}): Promise<RunningGateway> {
  const logger = options.logger ?? createLogger(initial.logLevel);
  const clock = options.clock ?? systemClock;
  const metrics = new GatewayMetrics();
  const ledger = observeLedger(options.ledger ?? (await openLedger(initial.ledger, { clock })), metrics, logger);
  metrics.watchSettlements(() => ledger.pendingReceipts(), () => clock.nowMs());
  metrics.watchQueue(() => ledger.queueStats(), (key) => assetByKey(current(), key), () => clock.nowMs());
  let current: () => Config = () => initial;
  const settlement: SettlementWiring = {
    log: ledger,
    reconciler: {
      holder: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
      onOutcome: (entry, outcome, written) => recordReconciled(metrics, current(), entry, outcome, written),
      onDeferredItem: (item, outcome) => recordDeferred(metrics, logger, current(), item, outcome, 'reconciler'),
      onError: (err) => logger.warn({ err }, 'settlement reconciliation failed; trying again'),
    },
    batcher: {
      onItem: (item, outcome) => recordDeferred(metrics, logger, current(), item, outcome, 'batch'),
      onBatch: (report) => {
        metrics.batchSize.observe(report.size);
        if (report.settled > 0) metrics.batchGasPerPayment.observe(Number(report.gasUsed) / report.settled);
        logger.info({ size: report.size, settled: report.settled, failed: report.failed, gasUsed: report.gasUsed.toString(), transaction: report.transaction }, 'batch settled');
      },
      onError: (err) => logger.warn({ err }, 'batch settlement failed; trying again'),
    },
    authorizations: {
      ledger,
      onOutcome: (row, outcome) => recordAuthorization(metrics, logger, current(), row, outcome),
      onUnexplained: (row) =>
        logger.warn(
          { requestId: row.requestId, network: row.network, payer: row.payer, nonce: row.nonce },
          'pending settlement: the authorization is used on chain but no AuthorizationUsed event was found in its window (cancelled?); the row stays pending',
        ),
      onError: (err) => logger.warn({ err }, 'pending settlement check failed; trying again'),
    },
    onReconciler: (reconciler) => metrics.addReconciler(reconciler.counters),
    onSettlerBalance: (reading, crossed) => {
      // Wei as a float: a gauge's value is one; at 18 decimals it is exact to ~1e-16 ETH of gas.
      metrics.settlerBalance.set({ network: reading.network, address: reading.address }, Number(reading.wei));
      metrics.settlerBalanceLow.set({ network: reading.network, address: reading.address }, reading.low ? 1 : 0);
      if (crossed && reading.low) logger.warn({ ...settlerBalanceDetail(reading) }, 'settler gas balance below settle.minBalance: top it up before settlements fail');
      if (crossed && !reading.low) logger.info({ ...settlerBalanceDetail(reading) }, 'settler gas balance back above settle.minBalance');
    },
    onSettlerBalanceError: (err) => logger.warn({ err }, 'could not read a settler gas balance; trying again'),
  };
  const backends = options.backends ?? new PaymentBackendCache(clock, (counters) => metrics.addCacheSource(counters), settlement);
  const work = new WorkInFlight();
  const unchargedForwards = new TokenBuckets();
  const failedPayments = new FailedPaymentAttempts();
  const build = (config: Config) => buildGateway(config, { ...backends.backendsFor(config), ledger, clock, logger, metrics, work, unchargedForwards, failedPayments });

  const listener = new PublicListener(await build(initial));
  current = () => listener.config;
  let ready = false;
  metrics.setConfig(initial.hash);
  const reloadFile: () => Promise<ReloadResult> = options.configPath
    ? makeReloader({
        path: options.configPath,
        env: options.env ?? {},
        logger,
        metrics,
        current: () => listener.config,
        apply: async (next) => listener.swap(await build(next)),
        check: (next, previous) => logStartupChecks(backends, next, previous, logger),
      })
    : async () => ({ result: 'error', hash: listener.config.hash, problems: ['the gateway was started without a config file to reload'] });
  // Every reload (file watch, SIGHUP, POST /admin/reload) goes through here, so the dashboard
  // shows the last one's result whichever started it.
  let lastReload: LastReload | undefined;
  const reload = async (): Promise<ReloadResult> => {
    const result = await reloadFile();
    lastReload = { atMs: clock.nowMs(), ...result };
    return result;
  };
  const admin = buildAdmin({
    logger,
    metrics,
    isReady: () => ready && !listener.draining,
    configHash: () => listener.config.hash,
    reload,
    ledger: { name: options.ledger ? 'provided by the embedding program' : ledgerName(initial.ledger), ping: () => ledger.ping() },
    settlers: () => backends.settlerBalances().map(settlerBalanceDetail),
    // `admin` needs a restart to change (reload.ts says so), so the tokens are the initial config's.
    ...(initial.admin.token === undefined && initial.admin.metricsToken === undefined
      ? {}
      : { tokens: { token: initial.admin.token, metricsToken: initial.admin.metricsToken } }),
    dashboard: { ledger, nowMs: () => clock.nowMs(), assets: () => listener.config.assets.values(), lastReload: () => lastReload },
  });

  // Facilitators are asked once at start. With a CDP key the answer is awaited: a refused key is
  // a config error no wait fixes, and a gateway that started with one would answer every paid
  // request 502. Without one, the start is not held up (a facilitator may be down for a minute).
  const facilitatorChecks = backends.checkFacilitators(initial);
  if (signsFacilitatorCalls(initial)) {
    const refused = credentialRefusals(await facilitatorChecks.catch(() => []));
    if (refused.length > 0) {
      await Promise.allSettled([listener.closeApps(), admin.close(), backends.close(), ledger.close()]);
      throw new Error(refused.join('; '));
    }
  }

  let url: string;
  let adminUrl: string;
  try {
    url = await listener.listen(initial.listen.port, initial.listen.host);
    adminUrl = await admin.listen({ host: initial.admin.host, port: initial.admin.port });
  } catch (err) {
    // A failed start (a port in use) leaves nothing open behind it: listener, apps, pools, ledger.
    await Promise.allSettled([listener.closeApps(), admin.close(), backends.close(), ledger.close()]);
    throw err;
  }
  const watcher = options.configPath && initial.reload.watch ? watchConfig(options.configPath, initial.reload.debounceMs, reload, logger) : undefined;
  const pruner = new LedgerPruner({ ledger, clock, logger, retentionMs: () => listener.config.ledger.retentionMs, onPruned: (rows) => metrics.prunedRows.inc(rows) });
  pruner.start();
  ready = true;
  for (const warning of initial.warnings) logger.warn({ warning }, 'config warning');
  const curve = secp256k1Backend();
  if (curve.kind === 'viem') logger.warn({ reason: curve.reason }, 'native secp256k1 unavailable: signatures are recovered and signed with viem (slower)');
  logStartupChecks(backends, initial, undefined, logger, facilitatorChecks);
  logger.info({ url, adminUrl, routes: initial.routes.length, config: initial.hash.slice(0, 12) }, 'gateway listening');

  let closing: Promise<void> | undefined;
  const drainAndClose = async (): Promise<void> => {
    watcher?.close();
    const graceMs = listener.config.shutdownGraceMs;
    const drainStarted = clock.nowMs();
    logger.info({ inFlight: listener.inFlight, settling: work.count, graceMs }, 'draining');
    // Settlements whose caller has already hung up count too: the money must finish moving and be recorded.
    await listener.drain(graceMs, () => work.count, logger);
    // settlement: deferred: what was served and queued is settled before exit, within the grace.
    const unsettled = await backends.flushDeferred?.(drainStarted + graceMs);
    if (unsettled !== undefined && unsettled > 0) logger.warn({ unsettled }, 'deferred payments left queued at exit: another replica, or this one on restart, settles them');
    await pruner.stop();
    await admin.close();
    await backends.close();
    await ledger.close();
    logger.info('stopped');
    logger.flush();
  };

  return {
    get config() {
      return listener.config;
    },
    admin,
    ledger,
    metrics,
    url,
    adminUrl,
    reload,
    close() {
      closing ??= drainAndClose();
      return closing;
    },
  };
}

/** Whether any facilitator of `config` is called with a CDP key. */
function signsFacilitatorCalls(config: Config): boolean {
  return [...config.networks.values()].some((n) => n.settle.mode === 'facilitator' && n.settle.facilitators.some((f) => f.cdp !== undefined));
}

/** A settler's gas balance as /readyz and the logs show it: wei as decimal strings. */
function settlerBalanceDetail(reading: SettlerBalanceReading): SettlerBalanceDetail {
  return {
    network: reading.network,
    address: reading.address,
    balanceWei: reading.wei.toString(),
    ...(reading.minBalanceWei === undefined ? {} : { minBalanceWei: reading.minBalanceWei.toString() }),
    low: reading.low,
  };
}

/** The configured asset a queue statistics key (`chainId:address`) names. */
function assetByKey(config: Config, key: string): { asset: string; network: string } | undefined {
  const asset = [...config.assets.values()].find((a) => `${a.network.chainId}:${a.address.toLowerCase()}` === key);
  return asset === undefined ? undefined : { asset: asset.id, network: asset.network.caip2 };
}

/** Counts a deferred payment's settlement (its revenue) or its failure (bad debt, and a line). */
function recordDeferred(metrics: GatewayMetrics, logger: Logger, config: Config, item: DeferredItem, outcome: DeferredOutcome, mode: 'batch' | 'reconciler'): void {
  const named = assetByKey(config, `${item.chainId}:${item.asset.toLowerCase()}`);
  const labels = { route: item.route, asset: named?.asset ?? item.asset, network: named?.network ?? `eip155:${item.chainId}` };
  const amount = Number(item.authorization.value);
  metrics.settlements.inc({ outcome: outcome.state, mode });
  if (outcome.state === 'settled') {
    metrics.revenue.inc(labels, amount);
    return;
  }
  metrics.badDebt.inc(labels, amount);
  logger.warn(
    { id: item.id, requestId: item.requestId, route: item.route, payer: getAddress(item.authorization.from), amount: item.authorization.value.toString(), reason: outcome.reason },
    'deferred payment served and not settled (bad debt)',
  );
}

/** Counts and logs a pending row the authorization reconciler finished from the chain. */
function recordAuthorization(metrics: GatewayMetrics, logger: Logger, config: Config, row: PendingReceipt, outcome: AuthorizationOutcome): void {
  const named = assetByKey(config, `${evmChainId(row.network)}:${row.asset.toLowerCase()}`);
  metrics.settlements.inc({ outcome: outcome.status === 'settled' ? 'settled' : 'failed', mode: 'reconciler' });
  if (outcome.status === 'settled') metrics.revenue.inc({ route: row.route, asset: named?.asset ?? row.asset, network: row.network }, Number(row.amount));
  logger.info(
    { requestId: row.requestId, route: row.route, payer: row.payer, amount: row.amount, status: outcome.status, ...(outcome.status === 'settled' ? { transaction: outcome.transaction } : { reason: outcome.reason }) },
    'pending settlement finished from the chain',
  );
}

/** Counts what a reconciler recorded, as the request path counts its own outcomes. */
function recordReconciled(metrics: GatewayMetrics, config: Config, entry: OpenSettlement, outcome: SettlementOutcome, written: readonly string[]): void {
  const asset = [...config.assets.values()].find((a) => a.network.chainId === entry.chainId && a.address.toLowerCase() === entry.asset.toLowerCase());
  for (const row of entry.receipts) {
    if (!written.includes(row.requestId)) continue;
    metrics.settlements.inc({ outcome: outcome.status === 'settled' ? 'settled' : 'failed', mode: 'reconciler' });
    if (outcome.status === 'settled') {
      metrics.revenue.inc({ route: row.route, asset: asset?.id ?? entry.asset, network: asset?.network.caip2 ?? `eip155:${entry.chainId}` }, Number(entry.amount));
    }
  }
}

/**
 * What a config names that the world may not match, checked without holding up the start (or the
 * reload): its facilitators' support and its assets' metadata. `previous`: only what is new.
 */
function logStartupChecks(
  backends: PaymentBackendSource,
  config: Config,
  previous: Config | undefined,
  logger: Logger,
  facilitatorChecks: Promise<{ network: string; reports: FacilitatorSupportReport[] }[]> = backends.checkFacilitators(config, previous),
): void {
  void facilitatorChecks.then(
    (checks) => {
      for (const { network, reports } of checks) {
        for (const report of reports) {
          // After a reload, the config is in force already: said as the error it is.
          if (!report.reachable && report.authRefused) logger.error({ network, facilitator: report.url, keyId: report.keyId, err: report.message }, 'facilitator refused the gateway\'s credentials: paid requests on this network will fail');
          else if (!report.reachable) logger.warn({ network, facilitator: report.url, err: report.message }, 'facilitator unreachable at start-up');
          else if (report.missing.length > 0) logger.warn({ network, facilitator: report.url, missing: report.missing }, 'facilitator does not support these kinds');
        }
      }
    },
    (err: unknown) => logger.warn({ err }, 'facilitator start-up check failed'),
  );
  void backends.checkAssets(config, previous).then(
    (problems) => {
      for (const problem of problems) logger.warn({ problem }, 'asset does not match its chain; payments in it will fail');
    },
    (err: unknown) => logger.warn({ err }, 'asset start-up check failed'),
  );
}
