/**
 * A running gateway: the ledger, the payment backends, the public and admin apps, listening.
 * Used by `x402-gateway start`, the demo and the tests alike.
 */
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { Config } from './config/types.js';
import { buildGateway } from './gateway.js';
import { buildAdmin } from './http/admin.js';
import { SqliteLedger } from './ledger/sqlite-ledger.js';
import { createPaymentBackends } from './payments/backends.js';
import { systemClock, type Clock, type Ledger } from './payments/ports.js';
import { loggerOptions } from './log.js';

export interface RunningGateway {
  readonly config: Config;
  readonly app: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly ledger: Ledger;
  /** `http://host:port` of the public listener. */
  readonly url: string;
  readonly adminUrl: string;
  close(): Promise<void>;
}

export interface RunOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Overrides config.ledger (tests pass their own store). */
  readonly ledger?: Ledger;
}

export async function runGateway(config: Config, options: RunOptions = {}): Promise<RunningGateway> {
  const logger = options.logger ?? pino(loggerOptions(config.logLevel));
  const clock = options.clock ?? systemClock;
  const ledger = options.ledger ?? new SqliteLedger(config.ledger.path);
  const backends = createPaymentBackends(config, clock);
  let ready = false;
  const app = await buildGateway(config, { ...backends, ledger, clock, logger });
  const admin = buildAdmin({ logger, isReady: () => ready, configHash: () => config.hash });
  const url = await app.listen({ host: config.listen.host, port: config.listen.port });
  const adminUrl = await admin.listen({ host: config.admin.host, port: config.admin.port });
  ready = true;
  void backends.checkFacilitators().then(
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
  logger.info({ url, adminUrl, routes: config.routes.length, config: config.hash.slice(0, 12) }, 'gateway listening');
  return {
    config,
    app,
    admin,
    ledger,
    url,
    adminUrl,
    async close() {
      ready = false;
      await app.close();
      await admin.close();
      await backends.close();
      await ledger.close();
    },
  };
}
