/**
 * The admin listener: health, readiness, Prometheus metrics and config reload. Bound to loopback
 * by default and never on the public port, so a caller cannot probe, scrape or reload it through
 * the gateway.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../metrics.js';

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
}

export function buildAdmin(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = deps.isReady();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', config: deps.configHash() });
  });
  app.get('/metrics', async (_request, reply) => {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.post('/admin/reload', async (_request, reply) => {
    const result = await deps.reload();
    return reply.code(result.result === 'applied' || result.result === 'unchanged' ? 200 : 422).send(result);
  });
  return app;
}
