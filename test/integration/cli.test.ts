/**
 * The command line, run in-process with captured output: validate, receipts, help, config
 * from the environment, and the development tools where they are not installed.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli, toolUnavailableMessage, type ToolLoader } from '../../src/cli.js';
import { probeTarget } from '../../src/http/health-probe.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import type { RunningGateway } from '../../src/server.js';
import { freePorts } from '../helpers/free-ports.js';
import { gatewayYamlHead, startGatewayFromFile, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';

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
    // Its mainnet network settles with the gateway's own key and RPC, from the environment.
    const out = io({ SETTLER_KEY: `0x${'11'.repeat(32)}`, BASE_RPC_URL: 'http://127.0.0.1:8545' });
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
    for (const command of ['start', 'validate', 'receipts', 'healthcheck', 'pay', 'demo']) {
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

  it('a copy of the product without src/tools/ (as the image has dist/src without dist/src/tools/): demo and pay say so in one line, init works', async () => {
    const root = mkdtempSync(join(tmpdir(), 'x402-no-tools-'));
    cpSync('src', join(root, 'src'), { recursive: true, filter: (from) => resolve(from) !== resolve('src/tools') });
    cpSync('package.json', join(root, 'package.json'));
    symlinkSync(resolve('node_modules'), join(root, 'node_modules'), 'dir');
    const run = (...argv: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts', ...argv], { cwd: root }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
      );
    const [demo, pay, init] = await Promise.all([
      run('demo'),
      run('pay', 'http://127.0.0.1:1/'),
      run('init', '--upstream', 'http://127.0.0.1:8080', '--pay-to', '0x1111111111111111111111111111111111111111', '--out', 'gateway.yaml'),
    ]);
    expect(demo).toEqual({ code: 2, stdout: '', stderr: `${toolUnavailableMessage('demo')}\n` });
    expect(pay).toEqual({ code: 2, stdout: '', stderr: `${toolUnavailableMessage('pay')}\n` });
    expect(init.code).toBe(0);
    expect(await runCli(['validate', '--config', join(root, 'gateway.yaml')], io({ SETTLER_KEY: `0x${'11'.repeat(32)}`, BASE_RPC_URL: 'http://127.0.0.1:8545' }))).toBe(0);
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

/**
 * A config as `init` writes it for settling with the gateway's own key: its secrets are `${VAR}`s
 * that a shell beside the ledger, or a container's health probe, does not have.
 */
function secretsConfig(name: string, sections: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", rpc: ["\${BASE_RPC_URL}"], settle: { mode: local, privateKey: "\${SETTLER_KEY}" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
${sections}
`,
  );
  return path;
}

describe('commands that read only the ledger need no settlement secrets', () => {
  const path = secretsConfig('secrets.yaml', `ledger: { path: "${ledgerPath}" }`);

  it('receipts reads the ledger with SETTLER_KEY and BASE_RPC_URL unset', async () => {
    const out = io();
    expect(await runCli(['receipts', '--config', path, '--json'], out)).toBe(0);
    expect(out.stderr).toEqual([]);
    expect(JSON.parse(out.stdout.join('\n'))).toEqual(expect.any(Array));
  });

  it('validate still reports the unset variables: it checks the file for start', async () => {
    const out = io();
    expect(await runCli(['validate', '--config', path], out)).toBe(1);
    expect(out.stderr).toEqual(
      expect.arrayContaining(['  networks.base.rpc[0]: environment variable BASE_RPC_URL is not set', '  networks.base.settle.privateKey: environment variable SETTLER_KEY is not set']),
    );
  });

  it('ledger migrate gets past the config without them (and says the target is no PostgreSQL store)', async () => {
    const out = io();
    expect(await runCli(['ledger', 'migrate', '--from', ledgerPath, '--config', path], out)).toBe(2);
    expect(out.stderr).toEqual([`x402-gateway ledger migrate: ${path} names a sqlite ledger; the target must be ledger: { store: postgres, url, pool }`]);
  });

  it('a PostgreSQL ledger still needs its ${DATABASE_URL}: one clear problem', async () => {
    const postgres = secretsConfig('secrets-postgres.yaml', 'ledger: { store: postgres, url: "${DATABASE_URL}" }');
    for (const argv of [['receipts', '--config', postgres], ['ledger', 'migrate', '--from', ledgerPath, '--config', postgres]]) {
      const out = io();
      expect(await runCli(argv, out)).toBe(1);
      expect(out.stderr).toEqual([`${postgres}: 1 problem`, '  ledger.url: environment variable DATABASE_URL is not set']);
    }
  });

  it('a problem in the ledger section itself is still one, with its YAML path', async () => {
    const bad = secretsConfig('secrets-bad-ledger.yaml', 'ledger: { path: "x.db", retention: "forever" }');
    const out = io();
    expect(await runCli(['receipts', '--config', bad], out)).toBe(1);
    expect(out.stderr[0]).toBe(`${bad}: 1 problem`);
    expect(out.stderr[1]).toMatch(/^ {2}ledger\.retention: /);
  });

  it('receipts on a ledger it cannot open: one line, exit 1', async () => {
    const unopenable = secretsConfig('secrets-unopenable.yaml', `ledger: { path: "${join(validPath, 'ledger.db')}" }`);
    const out = io();
    expect(await runCli(['receipts', '--config', unopenable], out)).toBe(1);
    expect(out.stderr).toEqual([expect.stringMatching(/^x402-gateway receipts: cannot open the ledger: cannot open the SQLite ledger .* is not a directory/)]);
  });
});

describe('x402-gateway healthcheck', () => {
  let gateway: RunningGateway | undefined;
  afterAll(async () => {
    await gateway?.close();
  });

  it('follows the config to a non-default admin port on 0.0.0.0, with no secret set (not even admin.token)', async () => {
    const [port = 0, adminPort = 0] = await freePorts(2);
    const path = secretsConfig(
      'healthcheck.yaml',
      `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 0.0.0.0, port: ${adminPort}, token: "\${ADMIN_TOKEN}" }
ledger: { path: ":memory:" }
reload: { watch: false }`,
    );
    gateway = await startGatewayFromFile(path, {
      env: { SETTLER_KEY: `0x${'11'.repeat(32)}`, BASE_RPC_URL: 'http://127.0.0.1:9', ADMIN_TOKEN: 'a-token-of-sixteen-or-more' },
    });
    const out = io();
    expect(await runCli(['healthcheck', '--config', path], out)).toBe(0);
    expect(out.stderr).toEqual([]);
    expect(out.stdout).toEqual([`x402-gateway healthcheck: ok (http://127.0.0.1:${adminPort}/healthz)`]);
    // The config from the environment, as the image's HEALTHCHECK finds it.
    expect(await runCli(['healthcheck'], io({ X402_GATEWAY_CONFIG: path }))).toBe(0);
  });

  it('nothing listening: exit 1 and one line on stderr', async () => {
    const [adminPort = 0] = await freePorts(1);
    const path = secretsConfig('healthcheck-nothing.yaml', `admin: { port: ${adminPort} }`);
    const out = io();
    expect(await runCli(['healthcheck', '--config', path], out)).toBe(1);
    expect(out.stdout).toEqual([]);
    expect(out.stderr).toEqual([`x402-gateway healthcheck: unhealthy: http://127.0.0.1:${adminPort}/healthz: connection refused (is the gateway running, with this config?)`]);
  });

  it('a listener that never answers: exit 1 within the timeout, one line', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const adminPort = (silent.address() as AddressInfo).port;
    const path = secretsConfig('healthcheck-silent.yaml', `admin: { port: ${adminPort} }`);
    const out = io();
    try {
      expect(await runCli(['healthcheck', '--config', path], out)).toBe(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
    expect(out.stderr).toEqual([`x402-gateway healthcheck: unhealthy: http://127.0.0.1:${adminPort}/healthz: no answer within 2000 ms`]);
  });

  it('no config, or a bad option: exit 1 (Docker reserves 2), one line', async () => {
    const none = io();
    expect(await runCli(['healthcheck'], none)).toBe(1);
    expect(none.stderr).toEqual(['x402-gateway healthcheck: unhealthy: No config file: pass --config FILE or set X402_GATEWAY_CONFIG.']);
    const bad = io();
    expect(await runCli(['healthcheck', '--port', '1'], bad)).toBe(1);
    expect(bad.stderr).toHaveLength(1);
  });

  it('reaches a wildcard address on loopback, any other as written', () => {
    expect(probeTarget('0.0.0.0', 9402)).toEqual({ host: '127.0.0.1', port: 9402, label: 'http://127.0.0.1:9402/healthz' });
    expect(probeTarget('::', 9402).host).toBe('127.0.0.1');
    expect(probeTarget('[::]', 9402).host).toBe('127.0.0.1');
    expect(probeTarget('::1', 9402)).toEqual({ host: '::1', port: 9402, label: 'http://[::1]:9402/healthz' });
    expect(probeTarget('10.0.0.7', 9402).host).toBe('10.0.0.7');
  });

  it('is listed in the usage', async () => {
    const out = io();
    expect(await runCli(['--help'], out)).toBe(0);
    expect(out.stdout.join('\n')).toMatch(/^ {2}healthcheck /m);
  });
});
