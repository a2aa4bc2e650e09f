/**
 * Subcommands: start, validate, init, receipts, ledger migrate, healthcheck (the product), and the development tools demo and pay,
 * loaded lazily from src/tools/ because they need dev-only packages (solc, anvil, the official
 * x402 clients) that the production image and `npm install --omit=dev` leave out. Takes its I/O
 * as arguments so tests can run it in-process; only `main.ts` passes the real process.
 */
import { parseArgs } from 'node:util';
import { commandConfigPath, NO_CONFIG_MESSAGE, type CliIo } from './cli-io.js';
import { loadConfigFile, loadConfigSection } from './config/load.js';
import { ADMIN_ADDRESS_SECTION, LEDGER_SECTION, type ConfigSection } from './config/parse-section.js';
import type { Config, LedgerConfig } from './config/types.js';
import { HEALTH_PATH, probeHealth, probeTarget } from './http/health-probe.js';
import { runInitCommand } from './init/init-command.js';
import { migrateSqliteToPostgres, type TableCopy } from './ledger/migrate-ledger.js';
import { openLedger } from './ledger/open-ledger.js';
import type { Receipt } from './payments/ports.js';
import { runGateway, type RunningGateway } from './server.js';

/** How long `healthcheck` may take: short, so a hung gateway is reported, not waited for. */
export const HEALTHCHECK_TIMEOUT_MS = 2_000;

const USAGE = `Usage: x402-gateway <command> [options]

Commands:
  start           Run the gateway in front of the configured upstreams
  validate        Check a config file and list every problem
  init            Write a commented config for an upstream (routes from its OpenAPI document, if given)
  receipts        List payment receipts from the ledger
  ledger migrate  Copy a SQLite ledger file into the PostgreSQL store the config names
  healthcheck     Ask the running gateway's admin listener for /healthz (a container's HEALTHCHECK)

Development tools (from a checkout after npm install; not in the production image):
  demo            Run a complete local setup: chain, token, upstream, gateway, funded payer
  pay             Pay for a URL with the official x402 client

Run 'x402-gateway <command> --help' for a command's options.
The config file comes from --config FILE or the X402_GATEWAY_CONFIG environment variable.
start and validate check the whole file; receipts, ledger migrate and healthcheck read only the
section they use (ledger, admin), so the settlement secrets need not be set for them.`;

const HELP: Record<string, string> = {
  start: `Usage: x402-gateway start --config FILE\n\nRuns the gateway. It reloads the file when it changes, on SIGHUP, and on POST /admin/reload;\nSIGTERM or SIGINT stops it after requests in flight (and their settlements) finish.`,
  validate: `Usage: x402-gateway validate --config FILE\n\nExits 0 when the file is valid; otherwise lists every problem with its YAML path and exits 1.`,
  receipts: `Usage: x402-gateway receipts --config FILE [--json | --csv] [--limit N] [--since UNIX_MS]\n\nLists receipts from the ledger named by the config, newest first (a table by default).\nReads only the config's ledger section: no other variable of it needs to be set.`,
  ledger: `Usage: x402-gateway ledger migrate --from SQLITE_FILE --config FILE\n\nCopies receipts, kept nonces, spent proofs and payer penalties from a SQLite ledger file into the\nPostgreSQL store the config names (creating its schema), in one transaction. Running it again\ncopies only what is new; a row PostgreSQL already has is kept as it is. The file is only read.\nReads only the config's ledger section (its \${DATABASE_URL}, say): no other variable needs to be set.`,
  healthcheck: `Usage: x402-gateway healthcheck [--config FILE]\n\nAsks the running gateway's admin listener (admin.host and admin.port of the config; 127.0.0.1 for\n0.0.0.0 or ::) for ${HEALTH_PATH}, within ${HEALTHCHECK_TIMEOUT_MS / 1000} s. Exits 0 when it answers ok; otherwise says why in one\nline and exits 1 (a usage error too: Docker reserves 2). Reads only admin.host and admin.port: no\nvariable of the config needs to be set. For a container HEALTHCHECK; Kubernetes probes ${HEALTH_PATH}\nand /readyz itself.`,
};

/** A development tool's command, as src/tools/ exports it. */
export type ToolCommand = (argv: readonly string[], io: CliIo) => Promise<number | undefined>;
export type ToolName = 'demo' | 'pay';
/** Loads a tool's command; rejects as `import()` does when its module or a package it needs is absent. */
export type ToolLoader = (name: ToolName) => Promise<ToolCommand>;

/** The only imports of src/tools/ from the product (test/unit/architecture.test.ts allows exactly these). */
export const importTool: ToolLoader = async (name) => {
  switch (name) {
    case 'demo':
      return (await import('./tools/demo/demo-command.js')).runDemoCommand;
    case 'pay':
      return (await import('./tools/pay-command.js')).runPayCommand;
  }
};

/** Returns an exit code, or undefined while a long-running command keeps the process alive. */
export async function runCli(argv: readonly string[], io: CliIo, loadTool: ToolLoader = importTool): Promise<number | undefined> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
    case 'validate':
    case 'receipts':
      return runConfigCommand(command, rest, io);
    case 'init':
      return runInitCommand(rest, io);
    case 'ledger':
      return runLedgerCommand(rest, io);
    case 'healthcheck':
      return runHealthcheckCommand(rest, io);
    case 'demo':
    case 'pay':
      return runToolCommand(command, rest, io, loadTool);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      io.out(USAGE);
      return command === undefined ? 2 : 0;
    default:
      io.err(`Unknown command "${command}".\n\n${USAGE}`);
      return 2;
  }
}

/**
 * Runs a development tool, or explains in one line why this installation has none: the
 * production image leaves out dist/src/tools/, and an install without devDependencies lacks
 * the packages the tools import. Only a missing module means that; any other fault propagates.
 */
async function runToolCommand(name: ToolName, argv: readonly string[], io: CliIo, loadTool: ToolLoader): Promise<number | undefined> {
  let command: ToolCommand;
  try {
    command = await loadTool(name);
  } catch (err) {
    if (!isModuleNotFound(err)) throw err;
    io.err(toolUnavailableMessage(name));
    return 2;
  }
  return command(argv, io);
}

/** The one line `demo` or `pay` prints where the development tools are not installed. */
export function toolUnavailableMessage(name: ToolName): string {
  return `x402-gateway ${name}: not available in this installation (it needs the development tools: run it from a checkout with npm install)`;
}

/** ESM `import()` reports an absent file or package as ERR_MODULE_NOT_FOUND; `require` as MODULE_NOT_FOUND. */
function isModuleNotFound(err: unknown): boolean {
  const code = err instanceof Error && 'code' in err ? err.code : undefined;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

async function runConfigCommand(command: 'start' | 'validate' | 'receipts', argv: readonly string[], io: CliIo): Promise<number | undefined> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
        csv: { type: 'boolean' },
        limit: { type: 'string' },
        since: { type: 'string' },
      },
      strict: true,
    }));
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${HELP[command]}`);
    return 2;
  }
  if (values.help) {
    io.out(HELP[command] ?? USAGE);
    return 0;
  }
  if (command === 'receipts') {
    const ledger = await loadCommandSection(values.config, LEDGER_SECTION, HELP[command] ?? USAGE, io);
    return typeof ledger === 'number' ? ledger : printReceipts(ledger.value, values, io);
  }
  const loaded = await loadCommandConfig(values.config, HELP[command] ?? USAGE, io);
  if (typeof loaded === 'number') return loaded;
  const { path } = loaded;
  switch (command) {
    case 'validate':
      io.out(`${path}: valid (${loaded.config.routes.length} routes, ${loaded.config.networks.size} networks)`);
      for (const warning of loaded.config.warnings) io.err(`  warning: ${warning}`);
      return 0;
    case 'start': {
      let gateway: RunningGateway;
      try {
        gateway = await runGateway(loaded.config, { configPath: path, env: io.env });
      } catch (err) {
        // A port in use, an unwritable ledger path: a one-line reason and exit 1, not a stack trace.
        io.err(`x402-gateway: could not start: ${err instanceof Error ? err.message : String(err)}`);
        return 1;
      }
      const stop = () => void gateway.close();
      io.onSignal('SIGTERM', stop);
      io.onSignal('SIGINT', stop);
      io.onSignal('SIGHUP', () => void gateway.reload());
      return undefined;
    }
  }
}

/** The whole config named by --config or X402_GATEWAY_CONFIG; or, having said why not, the exit code. */
async function loadCommandConfig(option: string | undefined, help: string, io: CliIo): Promise<{ path: string; config: Config } | number> {
  const path = commandConfigPath(option, io);
  if (path === undefined) {
    io.err(`${NO_CONFIG_MESSAGE}\n\n${help}`);
    return 2;
  }
  const loaded = await loadConfigFile(path, io.env);
  if (!loaded.ok) return reportProblems(path, loaded.problems, io);
  return { path, config: loaded.config };
}

/**
 * One section of the config named by --config or X402_GATEWAY_CONFIG, for a command that reads
 * nothing else (parse-section.ts says why); or, having said why not, the exit code.
 */
async function loadCommandSection<T>(option: string | undefined, section: ConfigSection<T>, help: string, io: CliIo): Promise<{ path: string; value: T } | number> {
  const path = commandConfigPath(option, io);
  if (path === undefined) {
    io.err(`${NO_CONFIG_MESSAGE}\n\n${help}`);
    return 2;
  }
  const loaded = await loadConfigSection(path, io.env, section);
  if (!loaded.ok) return reportProblems(path, loaded.problems, io);
  return { path, value: loaded.value };
}

function reportProblems(path: string, problems: readonly string[], io: CliIo): number {
  io.err(`${path}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  for (const problem of problems) io.err(`  ${problem}`);
  return 1;
}

/**
 * `healthcheck`: GET /healthz on the admin listener the config names, for a container runtime's
 * HEALTHCHECK. Only `admin.host` and `admin.port` are read (ADMIN_ADDRESS_SECTION), so the probe
 * runs without the gateway's secrets and follows a config whose admin port is not the default.
 * Every failure is one line on stderr and exit 1: Docker reads 0 and 1, and reserves 2.
 */
async function runHealthcheckCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const unhealthy = (why: string): number => {
    io.err(`x402-gateway healthcheck: unhealthy: ${why}`);
    return 1;
  };
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    return unhealthy(`${(err as Error).message} (usage: x402-gateway healthcheck [--config FILE])`);
  }
  if (values.help) {
    io.out(HELP['healthcheck'] ?? USAGE);
    return 0;
  }
  const path = commandConfigPath(values.config, io);
  if (path === undefined) return unhealthy(NO_CONFIG_MESSAGE);
  const admin = await loadConfigSection(path, io.env, ADMIN_ADDRESS_SECTION);
  if (!admin.ok) return unhealthy(`${path}: ${admin.problems.join('; ')}`);
  const target = probeTarget(admin.value.host, admin.value.port);
  const answer = await probeHealth(target, HEALTHCHECK_TIMEOUT_MS);
  if (!answer.ok) return unhealthy(`${target.label}: ${answer.reason}`);
  io.out(`x402-gateway healthcheck: ok (${target.label})`);
  return 0;
}

/** `ledger migrate`: the only ledger subcommand so far; the copy itself is src/ledger/migrate-ledger.ts. */
async function runLedgerCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const help = HELP['ledger'] ?? USAGE;
  const [subcommand, ...rest] = argv;
  if (subcommand === '--help' || subcommand === '-h') {
    io.out(help);
    return 0;
  }
  if (subcommand !== 'migrate') {
    io.err(`${subcommand === undefined ? 'No ledger subcommand' : `Unknown ledger subcommand "${subcommand}"`}.\n\n${help}`);
    return 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: { config: { type: 'string', short: 'c' }, from: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    io.out(help);
    return 0;
  }
  if (!values.from) {
    io.err(`x402-gateway ledger migrate: no SQLite file to copy from: pass --from FILE\n\n${help}`);
    return 2;
  }
  const loaded = await loadCommandSection(values.config, LEDGER_SECTION, help, io);
  if (typeof loaded === 'number') return loaded;
  const ledger = loaded.value;
  if (ledger.store !== 'postgres') {
    io.err(`x402-gateway ledger migrate: ${loaded.path} names a ${ledger.store} ledger; the target must be ledger: { store: postgres, url, pool }`);
    return 2;
  }
  let copies: TableCopy[];
  try {
    copies = await migrateSqliteToPostgres(values.from, ledger.url);
  } catch (err) {
    // A missing or newer file, an unreachable server: one line, and PostgreSQL is as it was.
    io.err(`x402-gateway ledger migrate: nothing copied: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  io.out(migrationSummary(copies, values.from));
  return 0;
}

/** `copied 12 receipts, 1 proof, ... from FILE (already present: 0 receipts, ...)`. */
function migrationSummary(copies: readonly TableCopy[], from: string): string {
  const count = (n: number, [one, many]: readonly [string, string]): string => `${n} ${n === 1 ? one : many}`;
  const copied = copies.map((c) => count(c.copied, c.noun)).join(', ');
  const present = copies.map((c) => count(c.read - c.copied, c.noun)).join(', ');
  return `copied ${copied} from ${from} (already present: ${present})`;
}

const RECEIPT_COLUMNS = ['time', 'requestId', 'route', 'method', 'path', 'amount', 'asset', 'network', 'payer', 'nonce', 'transaction', 'status', 'reason'] as const;

async function printReceipts(config: LedgerConfig, values: { json?: boolean; csv?: boolean; limit?: string; since?: string }, io: CliIo): Promise<number> {
  const limit = values.limit === undefined ? 100 : Number(values.limit);
  const since = values.since === undefined ? 0 : Number(values.since);
  if (!Number.isSafeInteger(limit) || limit < 1 || !Number.isSafeInteger(since) || since < 0) {
    io.err('--limit must be a positive integer and --since a Unix time in milliseconds');
    return 2;
  }
  // Read only: no expiry is judged, so the ledger's default clock (systemClock) is never consulted.
  let ledger;
  try {
    ledger = await openLedger(config);
  } catch (err) {
    // A file this user may not open, a server that does not answer: one line, as `start` says it.
    io.err(`x402-gateway receipts: cannot open the ledger: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  try {
    const rows = await ledger.receipts({ limit, since });
    if (values.json) io.out(JSON.stringify(rows, null, 2));
    else if (values.csv) {
      io.out(RECEIPT_COLUMNS.join(','));
      for (const row of rows) io.out(RECEIPT_COLUMNS.map((c) => csvField(String(row[c]))).join(','));
    } else {
      for (const row of rows) io.out(receiptLine(row));
      if (rows.length === 0) io.out('(no receipts)');
    }
    return 0;
  } finally {
    await ledger.close();
  }
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function receiptLine(r: Receipt): string {
  return [new Date(r.time).toISOString(), r.status.padEnd(14), r.route, r.amount, r.network, r.payer || '-', r.transaction || '-', r.reason].join('  ');
}
