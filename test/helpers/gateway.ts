/**
 * Runs a real gateway on loopback ports from YAML text, with an in-memory ledger unless a test
 * gives a file, and a silent logger unless X402_TEST_LOG is set.
 */
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import type { Clock } from '../../src/payments/ports.js';
import { runGateway, type RunningGateway } from '../../src/server.js';

/** Network `base` settled by a facilitator that is never reached: for tests that settle nothing. */
export const UNREACHABLE_FACILITATOR_BASE = `base: { network: "eip155:8453", settle: { mode: facilitator, url: "http://127.0.0.1:9" } }`;

/**
 * The head every test config shares: the public and admin listeners on loopback (free ports
 * unless given), `payTo`, and one network line (`base: {...}`). Upstreams and routes follow.
 */
export function gatewayYamlHead(options: { payTo: string; network: string; port?: number; adminPort?: number }): string {
  return `
listen: { host: 127.0.0.1, port: ${options.port ?? 0} }
admin: { host: 127.0.0.1, port: ${options.adminPort ?? 0} }
payTo: "${options.payTo}"
networks:
  ${options.network}
`;
}

export function parseTestConfig(yaml: string, env: Record<string, string> = {}): Config {
  const parsed = parseConfigText(yaml, env);
  if (!parsed.ok) throw new Error(`test config is invalid:\n${parsed.problems.join('\n')}`);
  return parsed.config;
}

export interface StartGatewayOptions {
  readonly env?: Record<string, string>;
  readonly clock?: Clock;
  readonly ledgerPath?: string;
  readonly logger?: Logger;
}

export async function startGateway(yaml: string, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  return runGateway(parseTestConfig(yaml, options.env), runOptions(options));
}

/** A gateway started from the config file at `path`, which `reload()` (and the file watch) re-read. */
export async function startGatewayFromFile(path: string, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const env = options.env ?? {};
  return runGateway(parseTestConfig(readFileSync(path, 'utf8'), env), { ...runOptions(options), configPath: path, env });
}

function runOptions(options: StartGatewayOptions) {
  return {
    logger: options.logger ?? pino({ level: process.env['X402_TEST_LOG'] ?? 'silent' }),
    ledger: new SqliteLedger(options.ledgerPath ?? ':memory:'),
    ...(options.clock ? { clock: options.clock } : {}),
  };
}
