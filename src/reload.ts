/**
 * Config reloads: the file is read by the same loader as at start-up, validated whole, and only a
 * valid, changed config is built and swapped in (http/listener.ts). An unreadable or invalid file
 * changes nothing but a log line and a metric. What the new config adds (a facilitator, an asset)
 * is checked as at start-up, and settings bound at start (listeners, ledger, log level, the watch
 * itself) are named as needing a restart.
 *
 * Triggers: a watch on the file's directory, SIGHUP (cli.ts), POST /admin/reload (http/admin.ts).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { loadConfigFile } from './config/load.js';
import type { Config } from './config/types.js';
import type { ReloadResult } from './http/admin.js';
import type { GatewayMetrics } from './metrics.js';

export interface ReloaderDeps {
  readonly path: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** The config now serving. */
  readonly current: () => Config;
  /** Builds the app of `next` and swaps it in; throws if it cannot be built. */
  readonly apply: (next: Config) => Promise<void>;
  /** The start-up checks of what `next` adds over `previous`, logged as warnings. */
  readonly check: (next: Config, previous: Config) => void;
}

/** A reload function that runs one reload at a time, in order. */
export function makeReloader(deps: ReloaderDeps): () => Promise<ReloadResult> {
  const { logger, metrics, path } = deps;
  let reloading = Promise.resolve<ReloadResult>({ result: 'unchanged', hash: deps.current().hash });
  const reloadOnce = async (): Promise<ReloadResult> => {
    const current = deps.current();
    const loaded = await loadConfigFile(path, deps.env);
    if (!loaded.ok) {
      const unreadable = 'unreadable' in loaded;
      metrics.configReloads.inc({ result: unreadable ? 'error' : 'invalid' });
      if (unreadable) logger.error({ problems: loaded.problems, path }, 'config reload: cannot read the file; keeping the active config');
      else logger.error({ problems: loaded.problems, path }, 'config reload refused: the file is invalid; keeping the active config');
      return { result: unreadable ? 'error' : 'invalid', hash: current.hash, problems: loaded.problems };
    }
    const next = loaded.config;
    if (next.hash === current.hash) {
      metrics.configReloads.inc({ result: 'unchanged' });
      return { result: 'unchanged', hash: current.hash };
    }
    for (const problem of restartOnlyChanges(current, next)) logger.warn({ problem }, 'config reload: this change needs a restart');
    try {
      await deps.apply(next);
    } catch (err) {
      metrics.configReloads.inc({ result: 'error' });
      logger.error({ err }, 'config reload failed; keeping the active config');
      return { result: 'error', hash: current.hash, problems: [String(err)] };
    }
    deps.check(next, current);
    metrics.configReloads.inc({ result: 'applied' });
    metrics.setConfig(next.hash);
    logger.info({ config: next.hash.slice(0, 12), previous: current.hash.slice(0, 12), routes: next.routes.length }, 'config reloaded');
    return { result: 'applied', hash: next.hash };
  };
  return () => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };
}

/** Settings bound at start; a reload cannot move them. Exported for its test. */
export function restartOnlyChanges(current: Config, next: Config): string[] {
  const changes: string[] = [];
  if (JSON.stringify(current.listen) !== JSON.stringify(next.listen)) changes.push('listen');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) changes.push('admin');
  if (JSON.stringify(current.ledger) !== JSON.stringify(next.ledger)) changes.push('ledger');
  if (current.logLevel !== next.logLevel) changes.push('log.level');
  if (JSON.stringify(current.reload) !== JSON.stringify(next.reload)) changes.push('reload');
  if (current.server.maxHeaderBytes !== next.server.maxHeaderBytes) changes.push('server.maxHeaderBytes');
  // A settling key's reconciler and batcher are made once, with the RPC of the first config that
  // named the key (payment-backends.ts); requests use the new RPC at once, they do not.
  for (const [name, network] of next.networks) {
    const before = current.networks.get(name);
    if (before === undefined || before.settle.mode !== 'local' || network.settle.mode !== 'local') continue;
    if (before.chainId !== network.chainId || before.settle.privateKey !== network.settle.privateKey) continue;
    if (JSON.stringify(before.rpc) !== JSON.stringify(network.rpc)) changes.push(`networks.${name}.rpc (for the settling key's reconciler and batcher)`);
  }
  return changes;
}

/**
 * Watches the config file's directory, not the file: Kubernetes updates a mounted ConfigMap by
 * swapping the `..data` symlink in that directory, and editors often replace a file rather than
 * write it, so a watch on the file itself would go deaf after the first change. Events are
 * debounced; an unchanged file is a no-op (the reload compares hashes).
 */
export function watchConfig(path: string, debounceMs: number, reload: () => Promise<ReloadResult>, logger: Logger): FSWatcher {
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
