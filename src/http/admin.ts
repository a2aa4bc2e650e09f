/**
 * The admin listener: health and readiness (metrics later). Bound to loopback by default and
 * never on the public port, so a caller cannot probe or scrape it through the gateway.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';

export interface AdminDeps {
  readonly logger: FastifyBaseLogger;
  /** Ready to take traffic: config loaded, listeners up, not draining. */
  readonly isReady: () => boolean;
  /** The active config's hash, reported by /readyz. */
  readonly configHash: () => string;
}

export function buildAdmin(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = deps.isReady();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', config: deps.configHash() });
  });
  return app;
}
