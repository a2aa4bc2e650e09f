/**
 * The gateway as a real process (`src/main.ts start`), for what only a process shows: signals,
 * a crash, a drain. Its config file and SQLite ledger live in a fresh temporary directory; its
 * listeners get ports that were free a moment before (the process is told them in its config).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import type { Receipt } from '../../src/payments/ports.js';
import { freePorts } from './free-ports.js';

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly ledgerPath: string;
  readonly configPath: string;
  /** The exit code, once the process has exited. */
  readonly exited: Promise<number | null>;
  /** What the process wrote to stdout and stderr so far; empty unless `captureOutput` was set. */
  readonly output: { readonly stdout: string; readonly stderr: string };
}

export interface GatewayProcessOptions {
  /** The config's `ledger` value; a SQLite file in the process's directory by default. */
  readonly ledger?: string;
  /** The config's `log.level`; `warn` by default. */
  readonly logLevel?: string;
  /** Pipes stdout and stderr into `output` (they are discarded otherwise). */
  readonly captureOutput?: boolean;
  /** Modules loaded with `--import` before the gateway, e.g. a fixture that installs a signal handler. */
  readonly preload?: readonly string[];
  /** Variables added to the process's environment (it inherits the test's). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Ports for the config `body` builds; `ledger` and `log` lines are added here. */
export async function startGatewayProcess(body: (ports: { port: number; adminPort: number }) => string, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'x402-process-'));
  const ledgerPath = join(dir, 'ledger.db');
  const configPath = join(dir, 'gateway.yaml');
  const [port = 0, adminPort = 0] = await freePorts(2);
  writeFileSync(configPath, `${body({ port, adminPort })}\nledger: ${options.ledger ?? `{ path: "${ledgerPath}" }`}\nlog: { level: ${options.logLevel ?? 'warn'} }\n`);
  const imports = ['tsx', ...(options.preload ?? [])].flatMap((module) => ['--import', module]);
  const child = spawn(process.execPath, [...imports, 'src/main.ts', 'start', '--config', configPath], {
    stdio: options.captureOutput ? ['ignore', 'pipe', 'pipe'] : 'ignore',
    env: { ...process.env, ...options.env },
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => void (output.stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => void (output.stderr += text));
  // 'close', not 'exit': by then the pipes are read to their end, so `output` holds everything.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${adminPort}`, ledgerPath, configPath, exited, output };
}

/** Every receipt row in the ledger file, read through a connection of its own. */
export async function ledgerReceipts(ledgerPath: string): Promise<Receipt[]> {
  const ledger = new SqliteLedger(ledgerPath);
  try {
    return await ledger.receipts({});
  } finally {
    await ledger.close();
  }
}
