/**
 * Starting the servers under test as child processes, each its own process so that its CPU time
 * and memory can be attributed to it.
 *
 * Children run compiled JavaScript (`buildChildren` runs tsc on bench/procs and what it imports),
 * as the gateway runs in production. Under tsx, Node 20 sends every dynamic `import()` through the
 * loader's worker thread, and viem imports its curve library dynamically on each signature
 * recovery: that showed up as ~10 % of the gateway's profile and would have been billed to it.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isChildMessage, PARAMS_ENV, type MemoryMessage, type ParentMessage } from './ipc.js';

/** How long a child may take to start listening (tsx transpiles on first load). */
export const CHILD_START_TIMEOUT_MS = 30_000;
/** After `stop`, how long to wait before SIGKILL. */
export const CHILD_STOP_GRACE_MS = 5_000;

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  /** RSS, heap and external memory of the child, as it measures itself. */
  memory(): Promise<{ rss: number; heapUsed: number; external: number }>;
  stop(): Promise<void>;
}

export interface StartChildOptions {
  readonly params?: Record<string, unknown>;
  readonly extraExecArgv?: readonly string[];
}

const TSCONFIG = fileURLToPath(new URL('../tsconfig.procs.json', import.meta.url));
/** Where tsconfig.procs.json puts the output; it mirrors the repository layout. */
const BUILD_DIR = new URL('../out/build/', import.meta.url);

/**
 * Compiles the child entries (incrementally: ~15 s the first time, ~4 s after). Type errors are
 * reported but do not stop the run (tsc still emits); `npm test` is where types are enforced.
 */
export function buildChildren(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', TSCONFIG], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const out = err instanceof Error && 'stdout' in err ? String(err.stdout) : String(err);
    console.warn(`bench: tsc reported problems (the build is used anyway):\n${out.slice(0, 2000)}`);
  }
}

/** The compiled `procs/<entry>.js`. */
function entryPath(entry: string): string {
  return fileURLToPath(new URL(`bench/procs/${entry}.js`, BUILD_DIR));
}

export async function startChild(name: string, entry: string, options: StartChildOptions = {}): Promise<Child> {
  const child = fork(entryPath(entry), [], {
    execArgv: [...(options.extraExecArgv ?? [])],
    env: { ...process.env, [PARAMS_ENV]: JSON.stringify(options.params ?? {}) },
    // stdout (the gateway's per-request log lines) goes nowhere; errors stay visible.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => process.removeListener('exit', killOnExit));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready after ${CHILD_START_TIMEOUT_MS} ms`)), CHILD_START_TIMEOUT_MS);
    child.on('message', (message: unknown) => {
      if (isChildMessage(message) && message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.url);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited with code ${code} before it was ready`));
    });
  }).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: no pid`);

  return {
    name,
    pid,
    url,
    memory: () => askMemory(child),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_GRACE_MS);
      send(child, { type: 'stop' });
      await exited;
      clearTimeout(timer);
    },
  };
}

function send(child: ChildProcess, message: ParentMessage): void {
  if (child.connected) child.send(message);
}

function askMemory(child: ChildProcess): Promise<MemoryMessage> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (isChildMessage(message) && message.type === 'memory') {
        child.off('message', onMessage);
        resolve(message);
      }
    };
    child.on('message', onMessage);
    send(child, { type: 'memory' });
  });
}
