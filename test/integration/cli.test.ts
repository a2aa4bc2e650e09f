/**
 * The command line, run in-process with captured output: validate, receipts, help, config
 * from the environment, and the development tools where they are not installed.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli, toolUnavailableMessage, type ToolLoader } from '../../src/cli.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { gatewayYamlHead, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';

function io(env: Record<string, string> = {}): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { env, out: (l) => stdout.push(l), err: (l) => stderr.push(l), onSignal: () => {}, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'x402-cli-'));
const ledgerPath = join(dir, 'ledger.db');
const validPath = join(dir, 'valid.yaml');
writeFileSync(
  validPath,
  `payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", settle: { mode: facilitator, url: "https://x402.org/facilitator" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
ledger: { path: "${ledgerPath}" }
`,
);
const brokenPath = join(dir, 'broken.yaml');
writeFileSync(
  brokenPath,
  `payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", settle: { mode: facilitator, url: "https://x402.org/facilitator" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /a", price: "$0.01" }
  - { match: "GET /b", price: "$0.01" }
  - { match: "GET /c", price: "$0.0000001" }
  - { match: "GET /d", price: "$1", upstream: nope }
`,
);

describe('x402-gateway validate', () => {
  it('exits 0 on the example file', async () => {
    const out = io();
    expect(await runCli(['validate', '--config', 'gateway.example.yaml'], out)).toBe(0);
    expect(out.stdout.join('\n')).toContain('valid');
  });

  it('exits 1 listing every problem with its YAML path', async () => {
    const out = io();
    expect(await runCli(['validate', '--config', brokenPath], out)).toBe(1);
    expect(out.stderr).toEqual([
      `${brokenPath}: 2 problems`,
      `  routes[2].price: "$0.0000001" is below the asset's smallest unit (6 decimals)`,
      '  routes[3].upstream: unknown upstream "nope"',
    ]);
  });

  it('warns (and still exits 0) when unmatched: free lets paths under a priced route pass free', async () => {
    const path = join(dir, 'unmatched-free.yaml');
    const text = (unmatched: string) => `payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", settle: { mode: facilitator, url: "https://x402.org/facilitator" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
defaults: { unmatched: ${unmatched} }
routes:
  - { match: "GET /v1/report", price: "$0.01" }
  - { match: "GET /files/**", price: "$0.01" }
`;
    writeFileSync(path, text('free'));
    const warned = io();
    expect(await runCli(['validate', '--config', path], warned)).toBe(0);
    expect(warned.stderr).toEqual([
      '  warning: routes[0]: with unmatched: free, paths under "GET /v1/report" (e.g. its path + "/x") pass free; an upstream that serves them from the same handler gives away the priced answer. Set defaults.unmatched: { free: true, protectPrefixes: true } to refuse them',
    ]);
    writeFileSync(path, text('{ free: true, protectPrefixes: true }'));
    const quiet = io();
    expect(await runCli(['validate', '--config', path], quiet)).toBe(0);
    expect(quiet.stderr).toEqual([]);
  });

  it('takes the path from X402_GATEWAY_CONFIG, and says so when there is none', async () => {
    expect(await runCli(['validate'], io({ X402_GATEWAY_CONFIG: validPath }))).toBe(0);
    const none = io();
    expect(await runCli(['validate'], none)).toBe(2);
    expect(none.stderr.join('\n')).toContain('X402_GATEWAY_CONFIG');
    const missing = io();
    expect(await runCli(['validate', '--config', join(dir, 'nope.yaml')], missing)).toBe(1);
    expect(missing.stderr.join('\n')).toContain('file not found');
  });

  it('has --help on each command, and refuses unknown options and commands', async () => {
    for (const command of ['start', 'validate', 'receipts', 'pay', 'demo']) {
      const out = io();
      expect(await runCli([command, '--help'], out)).toBe(0);
      expect(out.stdout.join('\n')).toMatch(/^Usage: x402-gateway /);
    }
    expect(await runCli(['validate', '--colour'], io())).toBe(2);
    expect(await runCli(['frobnicate'], io())).toBe(2);
  });
});

describe('the development tools (demo, pay)', () => {
  /** A loader that really imports something absent, as the production image lacks dist/src/tools/ or a devDependency. */
  const importing = (specifier: string): ToolLoader => () => import(specifier);

  it('--help lists them under their own heading, after the product commands', async () => {
    const out = io();
    expect(await runCli(['--help'], out)).toBe(0);
    const [product = '', tools = ''] = out.stdout.join('\n').split(/^Development tools\b.*$/m);
    expect(product).toMatch(/^ {2}start /m);
    expect(product).toMatch(/^ {2}receipts /m);
    expect(product).not.toMatch(/^ {2}(demo|pay) /m);
    expect(tools).toMatch(/^ {2}demo /m);
    expect(tools).toMatch(/^ {2}pay /m);
  });

  it('demo without the tools folder: one line on stderr and exit 2', async () => {
    const out = io();
    expect(await runCli(['demo'], out, importing('../../src/tools/demo/absent-demo-command.js'))).toBe(2);
    expect(out.stderr).toEqual(['x402-gateway demo: not available in this installation (it needs the development tools: run it from a checkout with npm install)']);
    expect(out.stdout).toEqual([]);
  });

  it('pay without a dev-only package it imports: the same one line, exit 2', async () => {
    const out = io();
    expect(await runCli(['pay', 'http://127.0.0.1:1/'], out, importing('@x402/absent-client'))).toBe(2);
    expect(out.stderr).toEqual([toolUnavailableMessage('pay')]);
  });

  it('any other failure to load a tool is a fault, not an absence', async () => {
    const broken: ToolLoader = () => Promise.reject(new SyntaxError('Unexpected token'));
    await expect(runCli(['demo'], io(), broken)).rejects.toThrow(SyntaxError);
  });
});

describe('x402-gateway receipts', () => {
  it('start: a port in use is a one-line reason and exit 1, not a crash', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    const path = join(dir, 'busy.yaml');
    writeFileSync(
      path,
      `${gatewayYamlHead({ payTo: '0x1111111111111111111111111111111111111111', network: UNREACHABLE_FACILITATOR_BASE, port })}
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
ledger: { path: "${join(dir, 'busy.db')}" }
log: { level: error }
reload: { watch: false }
`,
    );
    const out = io();
    try {
      expect(await runCli(['start', '--config', path], out)).toBe(1);
    } finally {
      busy.close();
    }
    expect(out.stderr).toEqual([expect.stringMatching(/^x402-gateway: could not start: .*EADDRINUSE/)]);
  });

  it('lists receipts as a table, JSON or CSV', async () => {
    const ledger = new SqliteLedger(ledgerPath);
    const row = {
      time: 1_767_225_600_000,
      requestId: 'r-1',
      route: 'GET /weather',
      method: 'GET',
      path: '/weather',
      amount: '10000',
      asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
      network: 'eip155:8453',
      payer: '0x2222222222222222222222222222222222222222',
      nonce: `0x${'ab'.repeat(32)}`,
      transaction: `0x${'cd'.repeat(32)}`,
      status: 'settled' as const,
      reason: '',
    };
    await ledger.record(row);
    await ledger.record({ ...row, requestId: 'r-2', time: row.time + 1, status: 'refused', reason: 'needs, "quoting"', transaction: '' });
    await ledger.close();

    const json = io();
    expect(await runCli(['receipts', '--config', validPath, '--json'], json)).toBe(0);
    expect(JSON.parse(json.stdout.join('\n'))).toEqual([
      { ...row, requestId: 'r-2', time: row.time + 1, status: 'refused', reason: 'needs, "quoting"', transaction: '' },
      row,
    ]);

    const csv = io();
    expect(await runCli(['receipts', '--config', validPath, '--csv'], csv)).toBe(0);
    expect(csv.stdout[0]).toBe('time,requestId,route,method,path,amount,asset,network,payer,nonce,transaction,status,reason');
    expect(csv.stdout[1]).toContain(',refused,"needs, ""quoting"""');
    expect(csv.stdout).toHaveLength(3);

    const table = io();
    expect(await runCli(['receipts', '--config', validPath, '--limit', '1'], table)).toBe(0);
    expect(table.stdout).toHaveLength(1);
    expect(table.stdout[0]).toContain('refused');
  });
});
