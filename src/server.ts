/**
 * A running gateway: the ledger, the payment backends, the public server and the admin app.
 * Used by `x402-gateway start`, the demo and the tests alike.
 *
 * Reload: the public socket is ours, and each config gets its own fastify app. A valid new config
 * builds a new app; one assignment then routes new requests to it, while requests in flight
 * finish on the app (and prices) they started with. The old app is closed once its last request
 * has ended. An invalid file changes nothing but a log line and a metric.
 *
 * Drain (SIGTERM): readiness turns false, the listener stops accepting, idle keep-alive
 * connections close, requests on busy connections get 503 GW_ERR_GATEWAY_DRAINING, requests in
 * flight (and their settlements) finish, the ledger is closed; after `shutdown.graceMs` whatever
 * is left is cut.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { parseConfigText } from './config/load.js';
import type { Config } from './config/types.js';
import { errorBody, GatewayError } from './errors.js';
import { buildGateway, type GatewayApp } from './gateway.js';
import { buildAdmin, type ReloadResult } from './http/admin.js';
import { observeLedger } from './ledger/observed-ledger.js';
import { SqliteLedger } from './ledger/sqlite-ledger.js';
import { TokenBuckets } from './limits/token-buckets.js';
import { createLogger } from './log.js';
import { GatewayMetrics } from './metrics.js';
import { PaymentBackendPool } from './payments/backends.js';
import { secp256k1Backend } from './payments/exact-evm/secp256k1-native.js';
import { WorkInFlight } from './payments/checkout.js';
import { systemClock, type Clock, type Ledger } from './payments/ports.js';

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
}

/** An app serving traffic, and how many of its requests are still in flight. */
interface LiveApp {
  readonly gateway: GatewayApp;
  inFlight: number;
  retired: boolean;
}

export async function runGateway(initial: Config, options: RunOptions = {}): Promise<RunningGateway> {
  const logger = options.logger ?? createLogger(initial.logLevel);
  const clock = options.clock ?? systemClock;
  const metrics = new GatewayMetrics();
  const ledger = observeLedger(options.ledger ?? new SqliteLedger(initial.ledger.path), metrics, logger);
  const pool = new PaymentBackendPool(clock, (counters) => metrics.addCacheSource(counters));
  const work = new WorkInFlight();
  const unchargedForwards = new TokenBuckets();
  /** Every app not yet closed: the live one and retired ones still finishing requests. */
  const apps = new Set<LiveApp>();
  const build = async (config: Config): Promise<LiveApp> => {
    const app: LiveApp = { gateway: await buildGateway(config, { ...pool.backendsFor(config), ledger, clock, logger, metrics, work, unchargedForwards }), inFlight: 0, retired: false };
    apps.add(app);
    return app;
  };

  let live = await build(initial);
  let ready = false;
  let draining = false;
  metrics.setConfig(initial.hash);

  const closeWhenIdle = (app: LiveApp) => {
    if (app.retired && app.inFlight === 0 && apps.delete(app)) void app.gateway.app.close();
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (draining) {
      const err = new GatewayError('GW_ERR_GATEWAY_DRAINING');
      res.writeHead(err.statusCode, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
      res.end(JSON.stringify(errorBody(err)));
      return;
    }
    const app = live;
    app.inFlight++;
    res.once('close', () => {
      app.inFlight--;
      closeWhenIdle(app);
    });
    app.gateway.handle(req, res);
  });
  // Longer than common load balancers' idle timeouts, so they close first and never race us.
  server.keepAliveTimeout = 65_000;

  let reloading = Promise.resolve<ReloadResult>({ result: 'unchanged', hash: initial.hash });
  const reload = (): Promise<ReloadResult> => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };
  const reloadOnce = async (): Promise<ReloadResult> => {
    const current = live.gateway.config;
    if (!options.configPath) {
      return { result: 'error', hash: current.hash, problems: ['the gateway was started without a config file to reload'] };
    }
    let text: string;
    try {
      text = await readFile(options.configPath, 'utf8');
    } catch (err) {
      metrics.configReloads.inc({ result: 'error' });
      logger.error({ err, path: options.configPath }, 'config reload: cannot read the file; keeping the active config');
      return { result: 'error', hash: current.hash, problems: [String(err)] };
    }
    const parsed = parseConfigText(text, options.env ?? {});
    if (!parsed.ok) {
      metrics.configReloads.inc({ result: 'invalid' });
      logger.error({ problems: parsed.problems, path: options.configPath }, 'config reload refused: the file is invalid; keeping the active config');
      return { result: 'invalid', hash: current.hash, problems: parsed.problems };
    }
    if (parsed.config.hash === current.hash) {
      metrics.configReloads.inc({ result: 'unchanged' });
      return { result: 'unchanged', hash: current.hash };
    }
    for (const problem of listenerChanges(current, parsed.config)) logger.warn({ problem }, 'config reload: this change needs a restart');
    let next: LiveApp;
    try {
      next = await build(parsed.config);
    } catch (err) {
      metrics.configReloads.inc({ result: 'error' });
      logger.error({ err }, 'config reload failed; keeping the active config');
      return { result: 'error', hash: current.hash, problems: [String(err)] };
    }
    const previous = live;
    live = next;
    previous.retired = true;
    closeWhenIdle(previous);
    metrics.configReloads.inc({ result: 'applied' });
    metrics.setConfig(parsed.config.hash);
    logger.info({ config: parsed.config.hash.slice(0, 12), previous: current.hash.slice(0, 12), routes: parsed.config.routes.length }, 'config reloaded');
    return { result: 'applied', hash: parsed.config.hash };
  };

  const admin = buildAdmin({ logger, metrics, isReady: () => ready && !draining, configHash: () => live.gateway.config.hash, reload });

  let adminUrl: string;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(initial.listen.port, initial.listen.host, () => resolve());
    });
    adminUrl = await admin.listen({ host: initial.admin.host, port: initial.admin.port });
  } catch (err) {
    // A failed start (a port in use) leaves nothing open behind it: listener, apps, pools, ledger.
    server.close();
    await Promise.allSettled([live.gateway.app.close(), admin.close(), pool.close(), ledger.close()]);
    throw err;
  }
  const url = addressUrl(server.address() as AddressInfo);
  const watcher = options.configPath && initial.reload.watch ? watchConfig(options.configPath, initial.reload.debounceMs, reload, logger) : undefined;
  ready = true;
  for (const warning of initial.warnings) logger.warn({ warning }, 'config warning');
  const curve = secp256k1Backend();
  if (curve.kind === 'viem') logger.warn({ reason: curve.reason }, 'native secp256k1 unavailable: signatures are recovered and signed with viem (slower)');
  void pool.checkFacilitators(initial).then(
    (checks) => {
      for (const { network, reports } of checks) {
        for (const report of reports) {
          if (!report.reachable) logger.warn({ network, facilitator: report.url, err: report.message }, 'facilitator unreachable at start-up');
          else if (report.missing.length > 0) logger.warn({ network, facilitator: report.url, missing: report.missing }, 'facilitator does not support these kinds');
        }
      }
    },
    (err: unknown) => logger.warn({ err }, 'facilitator start-up check failed'),
  );
  void pool.checkAssets(initial).then(
    (problems) => {
      for (const problem of problems) logger.warn({ problem }, 'asset does not match its chain; payments in it will fail');
    },
    (err: unknown) => logger.warn({ err }, 'asset start-up check failed'),
  );
  logger.info({ url, adminUrl, routes: initial.routes.length, config: initial.hash.slice(0, 12) }, 'gateway listening');

  let closing: Promise<void> | undefined;
  const drainAndClose = async (): Promise<void> => {
    draining = true;
    watcher?.close();
    const graceMs = live.gateway.config.shutdownGraceMs;
    logger.info({ inFlight: live.inFlight, settling: work.count, graceMs }, 'draining');
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    // Requests on any app (a reload may have retired one moments ago), and settlements whose
    // caller has already hung up: the money must finish moving and be recorded.
    const busy = () => [...apps].reduce((n, a) => n + a.inFlight, 0) + work.count;
    while (busy() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    if (busy() > 0) logger.error({ inFlight: busy() }, 'drain grace period over; cutting the requests left');
    server.closeAllConnections();
    await stopped;
    for (const app of apps) await app.gateway.app.close();
    await admin.close();
    await pool.close();
    await ledger.close();
    logger.info('stopped');
    logger.flush();
  };

  return {
    get config() {
      return live.gateway.config;
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

function addressUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Listener and ledger settings are bound at start; a reload cannot move them. */
function listenerChanges(current: Config, next: Config): string[] {
  const changes: string[] = [];
  if (JSON.stringify(current.listen) !== JSON.stringify(next.listen)) changes.push('listen');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) changes.push('admin');
  if (current.ledger.path !== next.ledger.path) changes.push('ledger.path');
  if (current.logLevel !== next.logLevel) changes.push('log.level');
  if (JSON.stringify(current.reload) !== JSON.stringify(next.reload)) changes.push('reload');
  return changes;
}

/**
 * Watches the config file's directory, not the file: Kubernetes updates a mounted ConfigMap by
 * swapping the `..data` symlink in that directory, and editors often replace a file rather than
 * write it, so a watch on the file itself would go deaf after the first change. Events are
 * debounced; an unchanged file is a no-op (the reload compares hashes).
 */
function watchConfig(path: string, debounceMs: number, reload: () => Promise<ReloadResult>, logger: Logger): FSWatcher {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(dirname(path), (_event, file) => {
    if (file !== null && file !== name && !file.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
  });
  watcher.on('error', (err) => logger.error({ err, path }, 'config watch failed; reload with SIGHUP or POST /admin/reload'));
  return watcher;
}
