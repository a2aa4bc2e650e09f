/**
 * `x402-gateway demo`, in-process, for real: anvil, the test token, the demo API and the gateway.
 * The self-test must pay with the official client and see the money arrive; the file it writes
 * must be a valid config whose ledger `receipts` can read; and a running demo must answer the
 * commands it prints and stop cleanly on a signal.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import { parseConfigText } from '../../src/config/load.js';
import { DEMO_ROUTES, demoConfigYaml } from '../../src/tools/demo/demo-config.js';
import { shellQuote } from '../../src/tools/demo/demo-banner.js';
import { runDemoCommand } from '../../src/tools/demo/demo-command.js';
import { waitFor } from '../helpers/wait.js';

interface CapturedIo extends CliIo {
  readonly lines: string[];
  readonly errors: string[];
  readonly handlers: Map<string, () => void>;
}

function captureIo(): CapturedIo {
  const lines: string[] = [];
  const errors: string[] = [];
  const handlers = new Map<string, () => void>();
  return {
    env: {},
    out: (line) => lines.push(line),
    err: (line) => errors.push(line),
    onSignal: (signal, handler) => void handlers.set(signal, handler),
    lines,
    errors,
    handlers,
  };
}

/** The value printed after `label` at the start of a banner line, e.g. `Gateway`. */
function bannerValue(lines: readonly string[], label: string): string {
  const line = lines.find((l) => l.trimStart().startsWith(`${label} `));
  const value = line?.trim().slice(label.length).trim().split(/\s+/)[0];
  if (!value) throw new Error(`no "${label}" line in:\n${lines.join('\n')}`);
  return value;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'demo-command-test-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('demo --self-test', () => {
  const io = captureIo();
  let code: number | undefined;

  beforeAll(async () => {
    code = await runDemoCommand(['--self-test', '--port', '0', '--admin-port', '0', '--dir', join(dir, 'self-test')], io);
  });

  it('exits 0 after an unpaid 402 and a payment settled on chain', () => {
    const output = io.lines.join('\n');
    expect(code, `stdout:\n${output}\nstderr:\n${io.errors.join('\n')}`).toBe(0);
    expect(output).toMatch(/self-test: ok +GET http:\/\/127\.0\.0\.1:\d+\/v1\/weather\?city=Paris without payment -> 402 Payment Required/);
    expect(output).toMatch(/paid with @x402\/fetch -> 200 OK, settled: true, transaction 0x[0-9a-f]{64}/);
    expect(output).toMatch(/balance 0 USDC -> 0\.01 USDC \(\+0\.01 USDC, expected \+0\.01 USDC\)/);
    expect(output).toContain('self-test: passed');
  });

  it('logs the requests readably on stderr', () => {
    expect(io.errors.some((l) => /gateway request .*status=402/.test(l))).toBe(true);
    expect(io.errors.some((l) => /gateway request .*status=200 .*tx=0x/.test(l))).toBe(true);
  });

  it('writes a config file that validates, with the ledger the receipts command reads', async () => {
    const path = bannerValue(io.lines, 'Config');
    expect(path).toBe(join(dir, 'self-test', 'gateway.yaml'));
    const parsed = parseConfigText(await readFile(path, 'utf8'), {});
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    expect(parsed.config.routes.map((r) => r.match)).toEqual(DEMO_ROUTES.map((r) => `${r.method} ${r.path}`));
    expect(parsed.config.ledger).toEqual({ store: 'sqlite', path: join(dir, 'self-test', 'ledger.db'), retentionMs: 7 * 86_400_000 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const receipts = captureIo();
    expect(await runCli(['receipts', '--config', path, '--json'], receipts)).toBe(0);
    const rows: unknown = JSON.parse(receipts.lines.join('\n'));
    expect(rows).toEqual([expect.objectContaining({ route: 'GET /v1/weather', amount: '10000', status: 'settled' })]);
  });
});

describe('demo, running until a signal', () => {
  const io = captureIo();
  let code: number | undefined;

  beforeAll(async () => {
    code = await runDemoCommand(['--port', '0', '--admin-port', '0', '--dir', join(dir, 'running')], io);
  });

  afterAll(async () => {
    // Stops the demo if a test failed before the signal test ran.
    io.handlers.get('SIGTERM')?.();
    await waitFor(() => io.lines.some((l) => l.startsWith('Stopped')), 15_000);
  });

  it('keeps running (no exit code) and registers both signals', () => {
    expect(code, io.errors.join('\n')).toBeUndefined();
    expect([...io.handlers.keys()].sort()).toEqual(['SIGINT', 'SIGTERM']);
  });

  it('prints commands that work: the curl of a paid route gets 402, free and admin routes answer', async () => {
    const gateway = bannerValue(io.lines, 'Gateway');
    const admin = bannerValue(io.lines, 'Admin');
    const output = io.lines.join('\n');
    expect(output).toContain(`curl -i '${gateway}/v1/weather?city=Paris'`);
    expect(output).toContain(`curl ${admin}/readyz`);
    expect(output).toContain('Ctrl-C');

    const unpaid = await fetch(`${gateway}/v1/weather?city=Paris`);
    expect(unpaid.status).toBe(402);
    expect(unpaid.headers.get('payment-required')).toBeTruthy();
    expect(await (await fetch(`${gateway}/health`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
  });

  it('pays with the printed pay command, for each paid route', async () => {
    const key = bannerValue(io.lines, 'Payer key');
    const gateway = bannerValue(io.lines, 'Gateway');
    const weather = captureIo();
    expect(await runCli(['pay', `${gateway}/v1/weather?city=Paris`, '--key', key], weather)).toBe(0);
    expect(weather.lines.join('\n')).toMatch(/status: 200[\s\S]*"success":true[\s\S]*"city":"Paris"/);

    const echo = captureIo();
    const args = ['pay', `${gateway}/v1/echo`, '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"hello":"x402"}', '--key', key];
    expect(await runCli(args, echo), echo.errors.join('\n')).toBe(0);
    expect(echo.lines.join('\n')).toContain('"echo":{"hello":"x402"}');

    const stream = captureIo();
    expect(await runCli(['pay', `${gateway}/v1/stream`, '--key', key], stream), stream.errors.join('\n')).toBe(0);
    expect(stream.lines.join('\n')).toMatch(/event: tick[\s\S]*"n":5,"of":5/);

    // The deferred route: the printed command is served at once, and its batch settles it.
    expect(io.lines.join('\n')).toContain(`pay ${gateway}/v1/time --key ${key}`);
    const time = captureIo();
    expect(await runCli(['pay', `${gateway}/v1/time`, '--key', key], time), time.errors.join('\n')).toBe(0);
    const receipt = /receipt: (.*)/.exec(time.lines.join('\n'))?.[1];
    const status = (JSON.parse(receipt ?? '{}') as { extra?: { settlement?: string; status?: string } }).extra;
    expect(status?.settlement).toBe('deferred');
    await waitFor(async () => ((await (await fetch(status!.status!)).json()) as { status: string }).status === 'settled', 15_000);
  });

  it('stops everything on SIGINT and sums up the payments', async () => {
    const gateway = bannerValue(io.lines, 'Gateway');
    io.handlers.get('SIGINT')?.();
    // The same Ctrl-C relayed again by a wrapper (tsx, npm) must not cut the cleanup short.
    io.handlers.get('SIGINT')?.();
    expect(io.errors).toContain('(SIGINT again while stopping: one more forces an exit)');
    await waitFor(() => io.lines.some((l) => l.startsWith('Stopped')), 15_000);
    expect(io.lines.filter((l) => l.startsWith('Stopping'))).toHaveLength(1);
    const output = io.lines.join('\n');
    expect(output).toContain('4 payments settled this run, 0.036 USDC in all.');
    expect(output).toContain(`Stopped. Config and ledger are kept in ${join(dir, 'running')}`);
    await expect(fetch(`${gateway}/health`)).rejects.toThrow();
  });
});

describe('demo pieces', () => {
  it('quotes shell words only when needed', () => {
    expect(shellQuote('http://127.0.0.1:8402/v1/echo')).toBe('http://127.0.0.1:8402/v1/echo');
    expect(shellQuote('http://127.0.0.1:8402/v1/weather?city=Paris')).toBe(`'http://127.0.0.1:8402/v1/weather?city=Paris'`);
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`);
  });

  it('escapes ${ in generated YAML so the loader does not expand it', () => {
    const yaml = demoConfigYaml({
      rpcUrl: 'http://127.0.0.1:8545',
      settlerKey: `0x${'11'.repeat(32)}`,
      payTo: `0x${'22'.repeat(20)}`,
      upstreamUrl: 'http://127.0.0.1:1',
      host: '127.0.0.1',
      port: 0,
      adminPort: 0,
      ledgerPath: '/tmp/a ${HOME} "quoted".db',
    });
    const parsed = parseConfigText(yaml, {});
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    expect(parsed.config.ledger).toEqual({ store: 'sqlite', path: '/tmp/a ${HOME} "quoted".db', retentionMs: 7 * 86_400_000 });
  });

  it('refuses a port in use before starting the chain', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const address = busy.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    try {
      const io = captureIo();
      expect(await runDemoCommand(['--port', String(address.port), '--admin-port', '0'], io)).toBe(1);
      expect(io.errors.join('\n')).toContain(`Port ${address.port} on 127.0.0.1 is in use`);
      expect(io.lines).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });

  it('explains a chain that will not start, and exits 1', async () => {
    const io = captureIo();
    const startChain = () => Promise.reject(new Error('anvil not found: install Foundry'));
    expect(await runDemoCommand(['--port', '0', '--admin-port', '0'], io, { startChain })).toBe(1);
    expect(io.errors).toEqual(['Could not start the local chain: anvil not found: install Foundry']);
  });

  it('answers --help and refuses bad ports without starting anything', async () => {
    const help = captureIo();
    expect(await runDemoCommand(['--help'], help)).toBe(0);
    expect(help.lines.join('\n')).toContain('--self-test');
    const bad = captureIo();
    expect(await runDemoCommand(['--port', '70000'], bad)).toBe(2);
    expect(bad.errors.join('\n')).toContain('--port and --admin-port');
  });
});
