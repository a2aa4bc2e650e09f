/**
 * Runs a real gateway on loopback ports from YAML text, with an in-memory ledger unless a test
 * gives a file, and a silent logger unless X402_TEST_LOG is set.
 */
import { pino, type Logger } from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import type { Clock } from '../../src/payments/ports.js';
import { runGateway, type RunningGateway } from '../../src/server.js';

export function parseTestConfig(yaml: string, env: Record<string, string> = {}): Config {
  const parsed = parseConfigText(yaml, env);
  if (!parsed.ok) throw new Error(`test config is invalid:\n${parsed.problems.join('\n')}`);
  return parsed.config;
}

export async function startGateway(yaml: string, options: { env?: Record<string, string>; clock?: Clock; ledgerPath?: string; logger?: Logger } = {}): Promise<RunningGateway> {
  const config = parseTestConfig(yaml, options.env);
  return runGateway(config, {
    logger: options.logger ?? pino({ level: process.env['X402_TEST_LOG'] ?? 'silent' }),
    ledger: new SqliteLedger(options.ledgerPath ?? ':memory:'),
    ...(options.clock ? { clock: options.clock } : {}),
  });
}
