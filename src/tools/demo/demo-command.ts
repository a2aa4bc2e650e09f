/**
 * `x402-gateway demo`: a complete local setup in one command, with no chain, key or money of the
 * operator's: anvil posing as Base with a test USDC, a funded payer, a demo API, and the real
 * gateway in front of it, configured from config/demo.yaml through the same parser as `start`.
 *
 * Runs until SIGINT / SIGTERM, or with `--self-test` makes one unpaid and one paid request, checks
 * the payment on chain, stops everything and exits 0 or 1.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { formatUnits } from 'viem';
import type { CliIo } from '../../cli-io.js';
import { parseConfigText } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { TEST_USDC_DECIMALS } from '../devchain/token.js';
import { loggerOptions } from '../../log.js';
import { runGateway } from '../../server.js';
import { demoInstructions, demoSummary, shellQuote, type DemoBannerParams } from './demo-banner.js';
import { DEMO_PAYER_FUNDS, startDemoChain, type DemoChain } from './demo-chain.js';
import { DEMO_CONFIG_FILE, demoConfigYaml } from './demo-config.js';
import { demoLogDestination } from './demo-log.js';
import { runSelfTest } from './demo-self-test.js';
import { startDemoUpstream } from './demo-upstream.js';
import { DEFAULT_ADMIN, DEFAULT_LISTEN } from '../../config/schema.js';

/** The gateway's and admin listener's usual ports, so the demo looks like a default install. */
const DEMO_DEFAULT_PORT = DEFAULT_LISTEN.port;
const DEMO_DEFAULT_ADMIN_PORT = DEFAULT_ADMIN.port;
/** Loopback only: the demo hands out a funded key and must not be reachable from elsewhere. */
export const DEMO_HOST = '127.0.0.1';
/** More receipts than a demo run makes; the stop summary reads at most this many. */
const RECEIPTS_SUMMARY_LIMIT = 100_000;
/** The route the self-test pays for. */
const SELF_TEST_ROUTE = 'GET /v1/weather';

const HELP = `Usage: x402-gateway demo [--port N] [--admin-port N] [--dir DIR] [--ledger FILE] [--self-test]

Runs a complete local setup: an anvil chain posing as Base (chain id 8453) with a test USDC,
a payer funded with ${formatUnits(DEMO_PAYER_FUNDS, TEST_USDC_DECIMALS)} USDC, a demo API, and the gateway in front of it. Prints
what runs where and commands to try. Needs no chain, key or money of yours. Ctrl-C stops it.

  --port N        gateway port (default ${DEMO_DEFAULT_PORT}; 0 picks a free one)
  --admin-port N  admin port for /healthz and /readyz (default ${DEMO_DEFAULT_ADMIN_PORT}; 0 picks a free one)
  --dir DIR       where to write gateway.yaml and the ledger (default: a new temporary directory)
  --ledger FILE   the ledger's SQLite file (default: DIR/ledger.db)
  --self-test     make one unpaid and one paid request, check the payment on chain, stop;
                  exits 0 when everything worked, 1 otherwise`;

/** What the demo starts that a test may replace (to see a failure handled, say). */
export interface DemoDeps {
  readonly startChain: () => Promise<DemoChain>;
}

const DEFAULT_DEPS: DemoDeps = { startChain: startDemoChain };

export async function runDemoCommand(argv: readonly string[], io: CliIo, deps: DemoDeps = DEFAULT_DEPS): Promise<number | undefined> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        port: { type: 'string', default: String(DEMO_DEFAULT_PORT) },
        'admin-port': { type: 'string', default: String(DEMO_DEFAULT_ADMIN_PORT) },
        dir: { type: 'string' },
        ledger: { type: 'string' },
        'self-test': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.err(`${messageOf(err)}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const port = parsePort(values.port);
  const adminPort = parsePort(values['admin-port']);
  if (port === undefined || adminPort === undefined) {
    io.err(`--port and --admin-port must be integers from 0 to 65535\n\n${HELP}`);
    return 2;
  }
  // Checked before the chain starts: a clash is the likeliest failure (a demo already running),
  // and it should cost no wait. The gateway's own listen would still catch a race.
  for (const [flag, p] of [['--port', port], ['--admin-port', adminPort]] as const) {
    if (p !== 0 && !(await portIsFree(DEMO_HOST, p))) {
      io.err(`Port ${p} on ${DEMO_HOST} is in use (is another demo running?). Choose another with ${flag} N, or ${flag} 0 for any free port.`);
      return 1;
    }
  }

  const selfTest = values['self-test'];
  const cleanups: { what: string; run: () => Promise<void> }[] = [];
  const shutdown = async (): Promise<boolean> => {
    let clean = true;
    for (const { what, run } of cleanups.reverse()) {
      try {
        await run();
      } catch (err) {
        clean = false;
        io.err(`Could not stop the ${what}: ${messageOf(err)}`);
      }
    }
    cleanups.length = 0;
    return clean;
  };
  const fail = async (message: string): Promise<number> => {
    io.err(message);
    await shutdown();
    return 1;
  };

  io.out('Starting a local chain, test USDC, demo API and gateway (a few seconds: the token is compiled first)...');
  let chain;
  try {
    chain = await deps.startChain();
  } catch (err) {
    return fail(`Could not start the local chain: ${messageOf(err)}`);
  }
  cleanups.push({ what: 'local chain', run: () => chain.stop() });

  let upstream;
  try {
    upstream = await startDemoUpstream({ host: DEMO_HOST });
  } catch (err) {
    return fail(`Could not start the demo API: ${messageOf(err)}`);
  }
  cleanups.push({ what: 'demo API', run: () => upstream.close() });

  // Files go to a fresh directory per run, so runs never share a ledger. It is kept after a
  // normal run (receipts stay readable) and removed after a self-test that chose it.
  let dir: string;
  try {
    dir = values.dir === undefined ? await mkdtemp(join(tmpdir(), 'x402-gateway-demo-')) : resolve(values.dir);
    if (values.dir === undefined && selfTest) cleanups.push({ what: 'temporary directory', run: () => rm(dir, { recursive: true, force: true }) });
    await mkdir(dir, { recursive: true });
  } catch (err) {
    return fail(`Could not create the demo's directory: ${messageOf(err)}`);
  }
  const configPath = join(dir, 'gateway.yaml');
  const ledgerPath = resolve(values.ledger ?? join(dir, 'ledger.db'));
  let yaml: string;
  try {
    yaml = demoConfigYaml({
      rpcUrl: chain.rpcUrl,
      settlerKey: chain.settlerKey,
      payTo: chain.payTo,
      upstreamUrl: upstream.url,
      host: DEMO_HOST,
      port,
      adminPort,
      ledgerPath,
    });
  } catch (err) {
    return fail(`Could not fill in the demo's config (${DEMO_CONFIG_FILE}): ${messageOf(err)}`);
  }
  const parsed = parseConfigText(yaml, io.env);
  if (!parsed.ok) return fail(`The generated demo config is invalid (a bug):\n  ${parsed.problems.join('\n  ')}`);
  const config = parsed.config;
  try {
    // 0600: the file holds a private key, if only a public dev one; operators copy this file.
    await writeFile(configPath, yaml, { mode: 0o600 });
  } catch (err) {
    return fail(`Could not write ${configPath}: ${messageOf(err)}`);
  }

  let gateway;
  try {
    gateway = await runGateway(config, { logger: pino(loggerOptions(config.logLevel), demoLogDestination(io.err)) });
  } catch (err) {
    const inUse = err instanceof Error && 'code' in err && err.code === 'EADDRINUSE';
    return fail(`Could not start the gateway: ${messageOf(err)}${inUse ? ' (choose other ports with --port and --admin-port, or 0 for any free one)' : ''}`);
  }
  cleanups.push({ what: 'gateway', run: () => gateway.close() });

  const banner: DemoBannerParams = {
    chain,
    payerFunds: DEMO_PAYER_FUNDS,
    upstreamUrl: upstream.url,
    gatewayUrl: gateway.url,
    adminUrl: gateway.adminUrl,
    configPath,
    ledgerPath,
    cli: cliInvocation(),
  };
  for (const line of demoSummary(banner)) io.out(line);

  if (selfTest) {
    io.out('');
    let passed = false;
    try {
      passed = await runSelfTest({
        gatewayUrl: gateway.url,
        payerKey: chain.payerKey,
        payTo: chain.payTo,
        expectedAmount: routeAmount(config, SELF_TEST_ROUTE),
        balanceOf: (owner) => chain.balanceOf(owner),
        out: io.out,
      });
    } catch (err) {
      io.err(`self-test: FAILED with an error: ${messageOf(err)}`);
    }
    const clean = await shutdown();
    return passed && clean ? 0 : 1;
  }

  for (const line of demoInstructions(banner)) io.out(line);
  let stopping: Promise<void> | undefined;
  // One signal often arrives twice: Ctrl-C or `timeout` signal the whole process group, and a
  // wrapper in it (tsx, npm) may relay the same signal again. The first repeat is absorbed, so
  // cleanup is not cut short; the one after that gets the default action, forcing an exit.
  const onSignal = (signal: 'SIGINT' | 'SIGTERM'): void => {
    io.onSignal(signal, () => {
      if (stopping !== undefined) {
        io.err(`(${signal} again while stopping: one more forces an exit)`);
        return;
      }
      onSignal(signal);
      stop();
    });
  };
  const stop = (): void => {
    stopping ??= (async () => {
      io.out('Stopping the gateway, the demo API and the chain...');
      // From the ledger, not the chain: on Ctrl-C anvil has the signal too and may be gone already.
      const settled = await gateway.ledger.receipts({ limit: RECEIPTS_SUMMARY_LIMIT }).then(
        (rows) => rows.filter((r) => r.status === 'settled'),
        () => undefined,
      );
      const clean = await shutdown();
      if (settled !== undefined) {
        const total = settled.reduce((sum, r) => sum + BigInt(r.amount), 0n);
        io.out(`${settled.length} payment${settled.length === 1 ? '' : 's'} settled this run, ${formatUnits(total, TEST_USDC_DECIMALS)} USDC in all.`);
      }
      io.out(`${clean ? 'Stopped.' : 'Stopped, with errors (above).'} Config and ledger are kept in ${dir}`);
      io.out(`  ${banner.cli} receipts --config ${shellQuote(configPath)}`);
    })();
  };
  onSignal('SIGINT');
  onSignal('SIGTERM');
  return undefined;
}

function parsePort(text: string): number | undefined {
  const n = Number(text);
  return /^\d+$/.test(text) && n <= 65_535 ? n : undefined;
}

/** Whether a TCP listener could bind host:port right now. */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const probe = createServer();
    probe.once('error', () => resolvePromise(false));
    probe.listen(port, host, () => probe.close(() => resolvePromise(true)));
  });
}

/** The atomic amount a route charges in its first accepted asset; the config is ours, so it exists. */
function routeAmount(config: Config, match: string): bigint {
  const route = config.routes.find((r) => r.match === match);
  const option = route?.price.kind === 'priced' ? route.price.options[0] : undefined;
  if (option === undefined) throw new Error(`the demo config has no priced route ${match}`);
  return option.amount;
}

/**
 * How the operator runs this CLI: from a clone (TypeScript source, as `npm start` does) it is
 * tsx on src/main.ts; from the built package it is the `x402-gateway` bin.
 */
function cliInvocation(): string {
  if (!import.meta.url.endsWith('.ts')) return 'npx x402-gateway';
  const main = fileURLToPath(new URL('../../main.ts', import.meta.url));
  const rel = relative(process.cwd(), main);
  return `npx tsx ${shellQuote(rel.startsWith('..') ? main : rel)}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
