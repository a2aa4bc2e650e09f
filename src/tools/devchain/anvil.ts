/**
 * A throw-away local chain: anvil (Foundry's dev node) as a child process on loopback.
 *
 * Used by the e2e tests and by the `npm start` demo. The binary comes from the npm package
 * `@foundry-rs/anvil`, whose platform package (e.g. `@foundry-rs/anvil-linux-amd64`) carries it;
 * npm may skip the wrapper's install script, so we run the platform binary directly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  createWalletClient,
  defineChain,
  http,
  publicActions,
  type Chain,
  type Hex,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createNonceManager, jsonRpc } from 'viem/nonce';

/** A running anvil. `stop()` is idempotent and resolves once the process has exited. */
export interface DevChain {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartAnvilOptions {
  /** Defaults to Base's id, so the official x402 clients' built-in USDC defaults apply. */
  readonly chainId?: number;
  /** 0 (the default) lets the OS choose; the chosen port is read from anvil's banner. */
  readonly port?: number;
  /** Interval mining; by default anvil mines one block per transaction, instantly. */
  readonly blockTimeSeconds?: number;
  readonly host?: string;
}

/** Base mainnet's chain id. Safe on loopback, and it lets clients pay "USDC on base" unchanged. */
export const DEFAULT_DEV_CHAIN_ID = 8453;
export const DEFAULT_ANVIL_HOST = '127.0.0.1';
/** Start-up is ~100 ms on an idle machine; the margin is for loaded CI runners. */
export const ANVIL_START_TIMEOUT_MS = 15_000;
/** After SIGTERM, how long to wait before SIGKILL. */
export const ANVIL_STOP_GRACE_MS = 3_000;
const READY_POLL_INTERVAL_MS = 25;
/** How much of anvil's output to keep for error messages. */
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * The first ten accounts of anvil's default mnemonic ("test test ... junk", m/44'/60'/0'/0/i).
 * Public knowledge: never fund these on a real network.
 */
export const ANVIL_DEV_KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
  '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a',
  '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba',
  '0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e',
  '0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356',
  '0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97',
  '0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6',
] as const satisfies readonly `0x${string}`[];

/**
 * How often viem polls a dev chain (block numbers, receipts). anvil mines on arrival, so viem's
 * default (4 s, or the chain's block time) would make every receipt wait take seconds.
 */
export const DEV_CHAIN_POLLING_INTERVAL_MS = 50;

/** A viem chain for a dev chain. Deliberately no `contracts.multicall3`: fresh anvil has none. */
export function devChainDefinition(chain: Pick<DevChain, 'rpcUrl' | 'chainId'>): Chain {
  return defineChain({
    id: chain.chainId,
    name: `anvil ${chain.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [chain.rpcUrl] } },
  });
}

/**
 * A wallet + public client for one key on a dev chain, with a short polling interval and its own
 * nonce manager (concurrent sends from one key would otherwise collide). Not viem's shared
 * `nonceManager`: it remembers the last nonce per address and chain id for the whole process,
 * so a second fresh chain with the same id would get nonces that are too high and never mine.
 */
export function createDevChainClient(chain: Pick<DevChain, 'rpcUrl' | 'chainId'>, privateKey: Hex) {
  return createWalletClient({
    account: privateKeyToAccount(privateKey, { nonceManager: createNonceManager({ source: jsonRpc() }) }),
    chain: devChainDefinition(chain),
    transport: http(chain.rpcUrl),
    pollingInterval: DEV_CHAIN_POLLING_INTERVAL_MS,
  }).extend(publicActions);
}

/** The client `createDevChainClient` returns. */
export type DevChainClient = ReturnType<typeof createDevChainClient>;

/**
 * Starts anvil and resolves once its RPC answers `eth_chainId` with the requested id.
 * Rejects (and kills the process) if it exits, fails to spawn, or is not ready in time.
 */
export async function startAnvil(opts: StartAnvilOptions = {}): Promise<DevChain> {
  const chainId = opts.chainId ?? DEFAULT_DEV_CHAIN_ID;
  const host = opts.host ?? DEFAULT_ANVIL_HOST;
  const args = ['--host', host, '--port', String(opts.port ?? 0), '--chain-id', String(chainId)];
  if (opts.blockTimeSeconds !== undefined) args.push('--block-time', String(opts.blockTimeSeconds));

  const binary = anvilBinaryPath();
  // stdout must stay a pipe and be drained for the process's whole life: --silent and --quiet
  // also suppress the "Listening on" line we need when the port is 0, and anvil logs every RPC
  // method it serves, so an unread pipe would fill and stall the chain.
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = new OutputTail();
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => output.push(chunk));
  child.stderr.on('data', (chunk: string) => output.push(chunk));

  // A crashed test run must not leave chains behind; 'exit' handlers may only do sync work.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= stopChild(child).finally(() => process.removeListener('exit', killOnExit));
    return stopping;
  };

  try {
    const deadline = Date.now() + ANVIL_START_TIMEOUT_MS;
    const port = await waitForListeningPort(child, output, binary, deadline);
    const rpcUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    await waitForChainId(rpcUrl, chainId, child, deadline);
    return { rpcUrl, chainId, process: child, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The platform package's binary, else `anvil` on PATH: a Foundry install, or under `npm run` the
 * `@foundry-rs/anvil` node wrapper, which forwards SIGTERM to the binary. If neither exists,
 * spawn reports ENOENT and `waitForListeningPort` turns it into an explanation.
 */
function anvilBinaryPath(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  try {
    const manifest = createRequire(import.meta.url).resolve(
      `@foundry-rs/anvil-${process.platform}-${arch}/package.json`,
    );
    return join(dirname(manifest), 'bin', exe);
  } catch {
    return exe;
  }
}

/** Resolves with the port from anvil's "Listening on HOST:PORT" banner line. */
function waitForListeningPort(
  child: ChildProcess,
  output: OutputTail,
  binary: string,
  deadline: number,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let banner = '';
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.removeListener('data', onData);
      child.removeListener('error', onError);
      child.removeListener('exit', onExit);
    };
    const fail = (message: string, cause?: unknown): void => {
      cleanup();
      reject(new Error(message, { cause }));
    };
    const onData = (chunk: string): void => {
      banner += chunk;
      const match = /Listening on \S+:(\d+)/.exec(banner);
      if (match?.[1] !== undefined) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      fail(
        err.code === 'ENOENT'
          ? `anvil not found: neither @foundry-rs/anvil-${process.platform}-* is installed nor is ` +
              `"anvil" on PATH (tried ${binary}); run npm install, or install Foundry`
          : `could not start anvil (${binary}): ${err.message}`,
        err,
      );
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      fail(`anvil exited before listening (code ${code}, signal ${signal}):\n${output.text()}`);
    };
    const timer = setTimeout(
      () => fail(`anvil did not report its port within ${ANVIL_START_TIMEOUT_MS} ms:\n${output.text()}`),
      Math.max(0, deadline - Date.now()),
    );
    child.stdout?.on('data', onData);
    child.once('error', onError);
    child.once('exit', onExit);
  });
}

/** Polls `eth_chainId` until anvil answers: the banner is printed just before the server accepts. */
async function waitForChainId(rpcUrl: string, chainId: number, child: ChildProcess, deadline: number): Promise<void> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`anvil exited while starting (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      const answered = await rpcChainId(rpcUrl);
      if (answered !== chainId) {
        throw new ChainIdMismatch(`anvil at ${rpcUrl} reports chain id ${answered}, expected ${chainId}`);
      }
      return;
    } catch (err) {
      if (err instanceof ChainIdMismatch) throw err;
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, READY_POLL_INTERVAL_MS));
  }
  throw new Error(`anvil at ${rpcUrl} did not answer eth_chainId within ${ANVIL_START_TIMEOUT_MS} ms`, {
    cause: lastError,
  });
}

/** A different chain answering on our port is a fault to report, not a reason to keep polling. */
class ChainIdMismatch extends Error {}

async function rpcChainId(rpcUrl: string): Promise<number> {
  const res = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    signal: AbortSignal.timeout(1_000),
  });
  const body: unknown = await res.json();
  const result = typeof body === 'object' && body !== null && 'result' in body ? body.result : undefined;
  if (typeof result !== 'string') throw new Error(`unexpected eth_chainId answer: ${JSON.stringify(body)}`);
  return Number.parseInt(result, 16);
}

/** SIGTERM, then SIGKILL after a grace period; resolves on exit. */
function stopChild(child: ChildProcess): Promise<void> {
  // No pid: spawn itself failed and no 'exit' will ever come.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ANVIL_STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** The last few thousand characters anvil printed, for start-up error messages. */
class OutputTail {
  #text = '';
  push(chunk: string): void {
    this.#text = (this.#text + chunk).slice(-OUTPUT_TAIL_CHARS);
  }
  text(): string {
    return this.#text;
  }
}
