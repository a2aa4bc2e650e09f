/**
 * `x402-gateway init`, end to end through runCli with captured output: the file it writes
 * validates with `validate`, it never replaces a file without --force, --facilitator and
 * --network shape the settlement, bad arguments get the usage and exit 2, and --openapi reads a
 * published document from a file and from a URL served by a real local HTTP server.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import { loadConfigFile } from '../../src/config/load.js';

function io(env: Record<string, string> = {}): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { env, out: (l) => stdout.push(l), err: (l) => stderr.push(l), onSignal: () => {}, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'x402-init-'));
let n = 0;
const fresh = () => join(dir, `gateway-${(n += 1)}.yaml`);
const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';
const BASE_ARGS = ['init', '--upstream', 'https://api.example.com', '--pay-to', PAY_TO];
const SETTLER_ENV = { SETTLER_KEY: `0x${'ab'.repeat(32)}`, BASE_RPC_URL: 'https://rpc.example.com' };
const EXAMPLES = new URL('../../node_modules/@readme/oas-examples/', import.meta.url).pathname;

async function validates(path: string, env: Record<string, string> = SETTLER_ENV): Promise<void> {
  const out = io(env);
  const code = await runCli(['validate', '--config', path], out);
  expect(out.stderr).toEqual([]);
  expect(code).toBe(0);
}

describe('x402-gateway init (no OpenAPI document)', () => {
  it('writes a commented file that validates: a free health route and a priced catch-all, settled with the gateway key', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path], out)).toBe(0);
    expect(out.stdout).toEqual([`wrote ${path}: 2 routes (GET /health free, * /** priced), base (eip155:8453), settled with the gateway's key: set SETTLER_KEY and BASE_RPC_URL before start`]);
    const text = readFileSync(path, 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./node_modules/x402-gateway/config/gateway.schema.json');
    expect(text).toContain('gateway.example.yaml');
    expect(text).toContain('rpc: ["${BASE_RPC_URL}"]');
    expect(text).toContain('settle: { mode: local, privateKey: "${SETTLER_KEY}" }');
    await validates(path);

    const loaded = await loadConfigFile(path, SETTLER_ENV);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const { config } = loaded;
    expect(config.routes.map((r) => [r.match, r.price.kind])).toEqual([
      ['GET /health', 'free'],
      ['* /**', 'priced'],
    ]);
    expect(config.payTo).toBe(PAY_TO);
    expect(config.networks.get('base')?.caip2).toBe('eip155:8453');
    expect(config.networks.get('base')?.rpc).toEqual([SETTLER_ENV.BASE_RPC_URL]);
    expect(config.networks.get('base')?.settle.mode).toBe('local');
    // Without the variables it is not valid: the key never sits in the file.
    const bare = io();
    expect(await runCli(['validate', '--config', path], bare)).toBe(1);
    expect(bare.stderr.join('\n')).toMatch(/SETTLER_KEY is not set[\s\S]*BASE_RPC_URL is not set|BASE_RPC_URL is not set[\s\S]*SETTLER_KEY is not set/);
  });

  it('refuses to replace an existing file without --force (one line, exit 1), and replaces it with --force', async () => {
    const path = fresh();
    writeFileSync(path, 'mine\n');
    const refused = io();
    expect(await runCli([...BASE_ARGS, '--out', path], refused)).toBe(1);
    expect(refused.stderr).toEqual([`x402-gateway init: ${path} exists; pass --force to replace it`]);
    expect(readFileSync(path, 'utf8')).toBe('mine\n');

    expect(await runCli([...BASE_ARGS, '--out', path, '--force'], io())).toBe(0);
    expect(readFileSync(path, 'utf8')).toContain('payTo:');
    await validates(path);
  });

  it('settles through --facilitator, with no key or RPC to set', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path, '--facilitator', 'https://x402.org/facilitator', '--price', '$0.25'], out)).toBe(0);
    expect(out.stdout[0]).toContain('settled by https://x402.org/facilitator');
    const text = readFileSync(path, 'utf8');
    expect(text).toContain('settle: { mode: facilitator, url: "https://x402.org/facilitator" }');
    expect(text).not.toContain('SETTLER_KEY}');
    await validates(path, {});
    const loaded = await loadConfigFile(path, {});
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const catchAll = loaded.config.routes[1];
    expect(catchAll?.price.kind === 'priced' && catchAll.price.options.map((o) => o.amount)).toEqual([250_000n]);
  });

  it('takes --network base-sepolia (eip155:84532) and its USDC', async () => {
    const path = fresh();
    expect(await runCli([...BASE_ARGS, '--out', path, '--network', 'base-sepolia'], io())).toBe(0);
    const loaded = await loadConfigFile(path, SETTLER_ENV);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(loaded.config.networks.get('base-sepolia')?.caip2).toBe('eip155:84532');
    expect(readFileSync(path, 'utf8')).toContain('accepts: [usdc@base-sepolia]');
  });

  it.each([
    [['init', '--pay-to', PAY_TO], 'no upstream: pass --upstream URL'],
    [['init', '--upstream', 'https://api.example.com'], 'no address to pay: pass --pay-to ADDRESS'],
    [[...BASE_ARGS.slice(0, 3), '--pay-to', '0x1234'], 'is not a 0x-prefixed 20-byte hex address'],
    [['init', '--upstream', 'ftp://api.example.com', '--pay-to', PAY_TO], 'is not an http(s) URL'],
    [[...BASE_ARGS, '--network', 'mars'], 'is not a chain with a built-in USDC'],
    [[...BASE_ARGS, '--price', '0.01'], "is not a dollar price like '$0.01'"],
    [[...BASE_ARGS, '--facilitator', 'nope'], 'is not an http(s) URL'],
    [[...BASE_ARGS, '--bogus'], "Unknown option '--bogus'"],
  ])('exits 2 with the usage on bad arguments: %j', async (argv, message) => {
    const path = fresh();
    const out = io();
    expect(await runCli([...argv, '--out', path], out)).toBe(2);
    expect(out.stderr.join('\n')).toContain(message);
    expect(out.stderr.join('\n')).toContain('Usage: x402-gateway init --upstream URL --pay-to ADDRESS');
    expect(() => readFileSync(path)).toThrow();
  });

  it('exits 2 and writes nothing when the arguments make an invalid config (a price finer than USDC has)', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path, '--price', '$0.0000001'], out)).toBe(2);
    expect(out.stderr.join('\n')).toContain(`routes[1].price: "$0.0000001" is below the asset's smallest unit (6 decimals)`);
    expect(() => readFileSync(path)).toThrow();
  });

  it('is listed in the usage, and answers --help with its own', async () => {
    const top = io();
    expect(await runCli(['--help'], top)).toBe(0);
    expect(top.stdout.join('\n')).toMatch(/^ {2}init {12}Write a commented config/m);
    const help = io();
    expect(await runCli(['init', '--help'], help)).toBe(0);
    expect(help.stdout.join('\n')).toContain('--openapi FILE_OR_URL');
  });
});

describe('x402-gateway init --openapi', () => {
  let server: Server;
  let base = '';
  /** A document whose texts need quoting: `: `, `#`, `${`, quotes and a line break. */
  const tricky = JSON.stringify({
    openapi: '3.1.0',
    info: { title: 'Tricky: API # 1', version: '2' },
    servers: [{ url: 'https://api.example.com/{v}', variables: { v: { default: 'v9' } } }],
    paths: {
      '/{dataset}/{version}/fields': { get: { summary: 'Fields: of a "dataset" # at ${version}\nsecond line', responses: {} } },
      '/{dataset}/{version}/fields/count': { get: { operationId: 'countFields', responses: {} } },
      '/ping': { options: { responses: {} }, head: { summary: 'ping head', responses: {} }, get: { summary: 'ping', responses: {} } },
    },
  });

  beforeAll(async () => {
    const petstore = readFileSync(join(EXAMPLES, '3.1/yaml/petstore.yaml'));
    server = createServer((req, res) => {
      if (req.url === '/petstore.yaml') res.writeHead(200, { 'content-type': 'application/yaml' }).end(petstore);
      else if (req.url === '/tricky.json') res.writeHead(200, { 'content-type': 'application/json' }).end(tricky);
      else res.writeHead(404).end('not here');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('routes every operation of a published document fetched from a URL (petstore 3.1, YAML), and the file validates', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path, '--openapi', `${base}/petstore.yaml`], out)).toBe(0);
    expect(out.stdout[0]).toContain(`: 20 routes from ${base}/petstore.yaml`);
    await validates(path);
    const loaded = await loadConfigFile(path, SETTLER_ENV);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const matches = loaded.config.routes.map((r) => r.match);
    expect(matches).toHaveLength(20);
    expect(matches.every((m) => / \/v2\//.test(m))).toBe(true);
    expect(matches.indexOf('GET /v2/pet/findByStatus')).toBeLessThan(matches.indexOf('GET /v2/pet/:petId'));
    expect(matches.indexOf('POST /v2/pet/:petId/uploadImage')).toBeLessThan(matches.indexOf('POST /v2/pet/:petId'));
    expect(loaded.config.routes.find((r) => r.match === 'GET /v2/pet/:petId')?.description).toBe('Find pet by ID');
    expect(readFileSync(path, 'utf8')).toContain('# Every path starts with /v2');
  });

  it('reads a published document from a file (petstore 3.0, JSON)', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path, '--openapi', join(EXAMPLES, '3.0/json/petstore.json'), '--facilitator', 'https://x402.org/facilitator'], out)).toBe(0);
    expect(out.stdout[0]).toContain(': 20 routes from');
    await validates(path, {});
  });

  it('quotes descriptions safely, resolves server variables, orders HEAD before GET and notes what it skipped', async () => {
    const path = fresh();
    const out = io();
    expect(await runCli([...BASE_ARGS, '--out', path, '--openapi', `${base}/tricky.json`], out)).toBe(0);
    expect(out.stderr).toEqual(['  not routed: OPTIONS /v9/ping: the gateway answers OPTIONS (CORS preflights) itself, never charged, so a route for it could never be served']);
    const loaded = await loadConfigFile(path, SETTLER_ENV);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(loaded.config.routes.map((r) => [r.match, r.description])).toEqual([
      ['HEAD /v9/ping', 'ping head'],
      ['GET /v9/ping', 'ping'],
      ['GET /v9/:dataset/:version/fields/count', 'countFields'],
      ['GET /v9/:dataset/:version/fields', 'Fields: of a "dataset" # at ${version} second line'],
    ]);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain('# Not routed: OPTIONS /v9/ping:');
    expect(text).toContain('(Tricky: API # 1 2)');
  });

  it('warns when the upstream URL already ends with the base path every route starts with', async () => {
    const out = io();
    expect(await runCli(['init', '--upstream', 'https://api.example.com/v9/', '--pay-to', PAY_TO, '--out', fresh(), '--openapi', `${base}/tricky.json`], out)).toBe(0);
    expect(out.stderr.at(-1)).toBe('  warning: --upstream ends with /v9, which every route already starts with, so the upstream would get /v9/v9/...: give its origin');
  });

  it.each([
    ['a URL that answers 404', () => `${base}/missing.yaml`, 'fetch answered 404'],
    ['a missing file', () => join(dir, 'nope.yaml'), 'file not found'],
    ['a Swagger 2.0 document', () => join(EXAMPLES, '2.0/json/petstore.json'), 'Swagger 2.0 is not supported'],
    ['a document with webhooks only', () => join(EXAMPLES, '3.1/yaml/webhooks.yaml'), 'no operation that the gateway can route'],
    ['a file that is not JSON or YAML', () => writeTemp('{ not: json'), 'not JSON or YAML'],
  ])('exits 1 and writes nothing for %s', async (_name, source, message) => {
    const path = fresh();
    const out = io();
    const from = source();
    expect(await runCli([...BASE_ARGS, '--out', path, '--openapi', from], out)).toBe(1);
    expect(out.stderr).toHaveLength(1);
    expect(out.stderr[0]).toContain(`x402-gateway init: ${from}: `);
    expect(out.stderr[0]).toContain(message);
    expect(() => readFileSync(path)).toThrow();
  });
});

function writeTemp(text: string): string {
  const path = join(dir, `doc-${(n += 1)}.json`);
  writeFileSync(path, text);
  return path;
}
