/**
 * Log lines reach stdout while the process runs and survive its end, as an operator reading
 * `docker logs` / `kubectl logs` needs: the gateway as a real process with stdout a pipe (as under
 * a container runtime), stopped with SIGTERM, crashed by an uncaught exception, and killed; and
 * the production logger itself under a burst of lines followed at once by a crash or a kill.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayYamlHead, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess, type GatewayProcessOptions } from '../helpers/gateway-process.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

/** Requests answered just before the process ends; each has its summary line. */
const REQUESTS = 20;

type Line = Record<string, unknown>;

function jsonLines(text: string): Line[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);
}

function running(gateway: GatewayProcess): boolean {
  return gateway.child.exitCode === null && gateway.child.signalCode === null;
}

let gateway: GatewayProcess | undefined;

afterEach(() => {
  if (gateway && running(gateway)) gateway.child.kill('SIGKILL');
  gateway = undefined;
});

/**
 * A gateway at level info whose config draws a start-up warning (`unmatched: free` beside a
 * priced route); its upstream is never reached, since unpaid requests are answered 402.
 */
async function startLoggingGateway(options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const started = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: '0x1111111111111111111111111111111111111111', network: UNREACHABLE_FACILITATOR_BASE, port, adminPort })}
upstreams:
  api: { url: "http://127.0.0.1:9" }
defaults: { unmatched: free }
routes:
  - { match: "GET /weather/:n", price: "$0.01" }
reload: { watch: false }
`,
    { logLevel: 'info', captureOutput: true, ...options },
  );
  gateway = started;
  return started;
}

/** Waits (while the process runs) for its start-up lines, then has it answer `REQUESTS` unpaid requests. */
async function serveRequests(gw: GatewayProcess): Promise<void> {
  await waitFor(() => jsonLines(gw.output.stdout).some((l) => l['msg'] === 'gateway listening'), 30_000, 25);
  for (let i = 0; i < REQUESTS; i++) expect((await send(gw.url, 'GET', `/weather/${i}`)).status).toBe(402);
}

/** The `n` of each request summary line (`/weather/n`), in the order written. */
function summarised(stdout: string): number[] {
  return jsonLines(stdout)
    .filter((l) => l['msg'] === 'request')
    .map((l) => Number(String(l['path']).replace('/weather/', '')));
}

const ALL_REQUESTS = Array.from({ length: REQUESTS }, (_, i) => i);

describe('the gateway process, stdout a pipe', () => {
  it('writes its start-up lines, the start-up warning among them, while it runs', async () => {
    const gw = await startLoggingGateway();
    let seenWhileRunning = false;
    await waitFor(() => {
      const messages = jsonLines(gw.output.stdout).map((l) => l['msg']);
      seenWhileRunning = messages.includes('config warning') && messages.includes('gateway listening') && running(gw);
      return seenWhileRunning;
    }, 30_000, 25);
    expect(seenWhileRunning).toBe(true);
    const warning = jsonLines(gw.output.stdout).find((l) => l['msg'] === 'config warning');
    expect(warning).toMatchObject({ level: 40, warning: expect.stringContaining('with unmatched: free') });

    // A request's summary line too, before the process is asked to stop.
    expect((await send(gw.url, 'GET', '/weather/0')).status).toBe(402);
    await waitFor(() => summarised(gw.output.stdout).length === 1, 10_000, 25);
    expect(running(gw)).toBe(true);
  });

  it('SIGTERM: every line written before it is in the output, then the drain and "stopped"', async () => {
    const gw = await startLoggingGateway();
    await serveRequests(gw);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(summarised(gw.output.stdout)).toEqual(ALL_REQUESTS);
    const messages = jsonLines(gw.output.stdout).map((l) => l['msg']);
    expect(messages.slice(-2)).toEqual(['draining', 'stopped']);
  });

  it('an uncaught exception: every line written before it is in the output', async () => {
    const gw = await startLoggingGateway({ preload: ['./test/fixtures/die-on-sigusr2.ts'], env: { X402_TEST_DEATH: 'throw' } });
    await serveRequests(gw);
    gw.child.kill('SIGUSR2');
    expect(await gw.exited).toBe(1);
    expect(gw.output.stderr).toContain('deliberate crash');
    expect(summarised(gw.output.stdout)).toEqual(ALL_REQUESTS);
  });

  it('killed (SIGKILL: no exit handler runs): every line written before it is in the output', async () => {
    const gw = await startLoggingGateway({ preload: ['./test/fixtures/die-on-sigusr2.ts'], env: { X402_TEST_DEATH: 'kill' } });
    await serveRequests(gw);
    gw.child.kill('SIGUSR2');
    await gw.exited;
    expect(gw.child.signalCode).toBe('SIGKILL');
    expect(summarised(gw.output.stdout)).toEqual(ALL_REQUESTS);
  });
});

describe('createLogger under a sudden death', () => {
  /** Runs test/fixtures/log-then-die.ts; resolves with its stdout once its pipes are closed. */
  function logThenDie(death: 'throw' | 'kill', count: number): Promise<{ stdout: string; code: number | null; signal: NodeJS.Signals | null }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/log-then-die.ts', death, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => void (stdout += text));
    child.stderr.resume();
    return new Promise((resolve) => child.once('close', (code, signal) => resolve({ stdout, code, signal })));
  }

  // Many lines in one turn of the event loop, so that a destination that writes later (or in the
  // background) would still hold some when the process dies.
  const COUNT = 2_000;

  it.each([
    ['an uncaught exception', 'throw'],
    ['SIGKILL', 'kill'],
  ] as const)('%s right after a burst of lines loses none of them', async (_name, death) => {
    const { stdout, code, signal } = await logThenDie(death, COUNT);
    if (death === 'kill') expect(signal).toBe('SIGKILL');
    else expect(code).toBe(1);
    expect(jsonLines(stdout).map((l) => l['i'])).toEqual(Array.from({ length: COUNT }, (_, i) => i));
  });
});
