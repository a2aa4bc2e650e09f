/**
 * The ready configs in config/ (every *.yaml there, found by listing the folder, so a new file is
 * covered the day it is added): each names the JSON Schema on its first line, loads through the
 * gateway's own loader with plausible values for exactly the variables it references, passes the
 * editor's JSON Schema as written, and keeps its secrets in the environment. Then what each one is
 * for: no mainnet network settles through the testnet-only facilitator (gateway.example.yaml
 * included), the CDP one carries a `cdp` block, the own-key one a key, an RPC and minBalance, the
 * replicas one PostgreSQL. The demo's template goes through the demo's own substitution first.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { DEMO_CONFIG_FILE, DEMO_ROUTES, fillDemoConfig, type DemoConfigParams } from '../../src/tools/demo/demo-config.js';

const CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));
const SCHEMA_LINE = '# yaml-language-server: $schema=./gateway.schema.json';
/** kustomize's, not the gateway's: it generates the Kubernetes ConfigMap (deploy-manifests.test.ts). */
const NOT_GATEWAY_CONFIGS = new Set(['kustomization.yaml']);
/** A template the demo fills in (bare `${DEMO_PORT}` numbers included), not a file to load as it is. */
const DEMO = 'demo.yaml';

const FILES = readdirSync(CONFIG_DIR)
  .filter((f) => /\.ya?ml$/.test(f) && !NOT_GATEWAY_CONFIGS.has(f))
  .sort();
const read = (file: string): string => readFileSync(join(CONFIG_DIR, file), 'utf8');

/** A CDP Ed25519 secret as CDP issues it: base64 of the 32-byte seed and then the 32-byte public key. */
function cdpSecret(): string {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from(jwk.d ?? '', 'base64url'), Buffer.from(jwk.x ?? '', 'base64url')]).toString('base64');
}

/** Plausible values of every variable a ready config may reference; a new one must be added here. */
const PLAUSIBLE_ENV: Readonly<Record<string, string>> = {
  PAY_TO: '0x209693Bc6afc0C5328bA36FaF03C514EF312287C',
  SETTLER_KEY: `0x${'11'.repeat(32)}`,
  BASE_RPC_URL: 'https://base-mainnet.example.com/v2/key',
  ADMIN_TOKEN: 'a-long-enough-admin-token-0123',
  UPSTREAM_TOKEN: 'upstream-token',
  DATABASE_URL: 'postgres://gateway:secret@postgres.example.com:5432/x402',
  CDP_API_KEY_ID: '9d7a8a3c-1f5e-4c1b-9f3e-2a6b5c4d3e2f',
  CDP_API_KEY_SECRET: cdpSecret(),
};

const DEMO_PARAMS: DemoConfigParams = {
  rpcUrl: 'http://127.0.0.1:8545',
  settlerKey: `0x${'11'.repeat(32)}`,
  payTo: `0x${'22'.repeat(20)}`,
  upstreamUrl: 'http://127.0.0.1:3000',
  host: '127.0.0.1',
  port: 8402,
  adminPort: 9402,
  ledgerPath: '/tmp/x402-gateway-demo/ledger.db',
};

/** `${NAME}` references in a file's values (not its comments, which are never expanded). */
function referencedVars(text: string): string[] {
  const names = [...JSON.stringify(parse(text)).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map((m) => m[1] as string);
  return [...new Set(names)].sort();
}

/** Loads a ready config as the gateway would, with exactly the variables it references set. */
function load(file: string): Config {
  const text = read(file);
  const result =
    file === DEMO
      ? parseConfigText(fillDemoConfig(text, DEMO_PARAMS), {})
      : parseConfigText(
          text,
          Object.fromEntries(
            referencedVars(text).map((name) => {
              const value = PLAUSIBLE_ENV[name];
              if (value === undefined) throw new Error(`${file} references \${${name}}: add a plausible value to PLAUSIBLE_ENV`);
              return [name, value];
            }),
          ),
        );
  if (!result.ok) throw new Error(`${file}:\n  ${result.problems.join('\n  ')}`);
  return result.config;
}

/** The YAML as written, before expansion. */
const raw = (file: string): unknown => parse(read(file));
function at(root: unknown, path: string): unknown {
  let value = root;
  for (const key of path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

/** Facilitators that serve testnets only, and the chains they serve. */
const TESTNET_ONLY_FACILITATORS = new Set(['x402.org']);
const TESTNET_CHAIN_IDS = new Set([84532]);
const BASE_USDC = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
const BASE_SEPOLIA_USDC = '0x036CbD53842c5426634e7929541eC2318f3dCF7e';

describe('config/*.yaml', () => {
  it('holds the ready configs the README lists (a new file is checked below as soon as it exists)', () => {
    expect(FILES).toEqual(expect.arrayContaining(['base-mainnet-cdp.yaml', 'base-mainnet-own-key.yaml', 'base-sepolia.yaml', 'demo.yaml', 'kubernetes.yaml', 'replicas-postgres.yaml']));
  });

  describe.each(FILES)('%s', (file) => {
    it('names config/gateway.schema.json on its first line, for the YAML language server', () => {
      expect(read(file).split('\n')[0]).toBe(SCHEMA_LINE);
    });

    it("loads through the gateway's loader with plausible values for the variables it references", () => {
      expect(load(file).routes.length).toBeGreaterThan(0);
    });

    it.skipIf(file === DEMO)("passes the editor's JSON Schema as written, ${VAR} references included", () => {
      const validate = new Ajv2020({ strict: false, allErrors: true }).compile(JSON.parse(read('gateway.schema.json')) as object);
      expect(validate(raw(file)), JSON.stringify(validate.errors)).toBe(true);
    });

    it('keeps its secrets in the environment: keys, tokens, API key secrets and database URLs are ${VAR} references', () => {
      const secrets: unknown[] = [];
      const walk = (value: unknown, key: string): void => {
        if (Array.isArray(value)) value.forEach((v) => walk(v, key));
        else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) walk(v, k);
        else if (['privateKey', 'apiKeySecret', 'token', 'metricsToken'].includes(key)) secrets.push(value);
      };
      walk(raw(file), '');
      const ledgerUrl = at(raw(file), 'ledger.url');
      if (ledgerUrl !== undefined) secrets.push(ledgerUrl);
      for (const secret of secrets) expect(secret).toMatch(/^\$\{[A-Z_]+\}$/);
    });
  });
});

describe('the facilitator each network settles through', () => {
  it.each([...FILES, '../gateway.example.yaml'])('%s: no mainnet network uses a testnet-only facilitator', (file) => {
    for (const network of load(file).networks.values()) {
      if (network.settle.mode !== 'facilitator') continue;
      for (const { url } of network.settle.facilitators) {
        if (TESTNET_ONLY_FACILITATORS.has(new URL(url).hostname)) expect(TESTNET_CHAIN_IDS, `${network.name} (${network.caip2}) settles through ${url}`).toContain(network.chainId);
      }
    }
  });
});

describe('what each ready config is for', () => {
  it('base-mainnet-cdp.yaml: Base mainnet USDC, verified and settled by CDP with its API key from the environment', () => {
    const config = load('base-mainnet-cdp.yaml');
    const base = config.networks.get('base');
    expect(base).toMatchObject({ caip2: 'eip155:8453', verify: 'facilitator', settle: { mode: 'facilitator' } });
    expect(base?.settle.mode === 'facilitator' && base.settle.facilitators.map((f) => f.url)).toEqual(['https://api.cdp.coinbase.com/platform/v2/x402']);
    expect(at(raw('base-mainnet-cdp.yaml'), 'networks.base.settle.cdp')).toEqual({ apiKeyId: '${CDP_API_KEY_ID}', apiKeySecret: '${CDP_API_KEY_SECRET}' });
    expect(config.assets.get('usdc@base')?.address).toBe(BASE_USDC);
  });

  it('base-mainnet-own-key.yaml: Base mainnet USDC, settled with ${SETTLER_KEY} through ${BASE_RPC_URL}, with minBalance', () => {
    const config = load('base-mainnet-own-key.yaml');
    const base = config.networks.get('base');
    expect(base).toMatchObject({ caip2: 'eip155:8453', verify: 'local', rpc: [PLAUSIBLE_ENV['BASE_RPC_URL']], settle: { mode: 'local', privateKey: PLAUSIBLE_ENV['SETTLER_KEY'] } });
    expect(at(raw('base-mainnet-own-key.yaml'), 'networks.base.settle.privateKey')).toBe('${SETTLER_KEY}');
    expect(at(raw('base-mainnet-own-key.yaml'), 'networks.base.rpc')).toEqual(['${BASE_RPC_URL}']);
    expect(base?.settle.mode === 'local' && base.settle.minBalanceWei).toBe('2000000000000000');
    expect(config.assets.get('usdc@base')?.address).toBe(BASE_USDC);
  });

  it('base-sepolia.yaml: Base Sepolia test USDC through the public testnet facilitator', () => {
    const config = load('base-sepolia.yaml');
    const network = config.networks.get('base-sepolia');
    expect(network).toMatchObject({ caip2: 'eip155:84532', verify: 'facilitator' });
    expect(network?.settle.mode === 'facilitator' && network.settle.facilitators.map((f) => f.url)).toEqual(['https://x402.org/facilitator']);
    const weather = config.routes[0];
    expect(weather?.price.kind === 'priced' && weather.price.options.map((o) => [o.asset.id, o.asset.address])).toEqual([['usdc@base-sepolia', BASE_SEPOLIA_USDC]]);
  });

  it('replicas-postgres.yaml: one PostgreSQL ledger at ${DATABASE_URL}, an admin port the replicas expose behind a token', () => {
    const config = load('replicas-postgres.yaml');
    expect(config.ledger).toMatchObject({ store: 'postgres', url: PLAUSIBLE_ENV['DATABASE_URL'] });
    expect(at(raw('replicas-postgres.yaml'), 'ledger.url')).toBe('${DATABASE_URL}');
    expect(config.admin.token).toBe(PLAUSIBLE_ENV['ADMIN_TOKEN']);
  });

  it('kubernetes.yaml: the single pod keeps its SQLite ledger on the volume at /data', () => {
    expect(load('kubernetes.yaml').ledger).toMatchObject({ store: 'sqlite', path: '/data/ledger.db' });
  });

  it('every config that pays on Base mainnet charges the real USDC', () => {
    for (const file of FILES) {
      const config = load(file);
      for (const network of config.networks.values()) {
        if (network.chainId !== 8453) continue;
        const usdc = [...config.assets.values()].find((a) => a.id === `usdc@${network.name}`);
        // The demo's chain poses as Base with a test token deployed at the same address.
        expect(usdc?.address, file).toBe(BASE_USDC);
      }
    }
  });
});

describe('demo.yaml, the template `x402-gateway demo` fills in', () => {
  it('is the file the demo reads, from a checkout', () => {
    expect(DEMO_CONFIG_FILE).toBe(join(CONFIG_DIR, DEMO));
  });

  it("routes exactly the demo's DEMO_ROUTES (its banner and self-test rely on them)", () => {
    const routes = load(DEMO).routes.map((r) => ({ match: r.match, description: r.description, mimeType: r.mimeType, settlement: r.settlement, free: r.price.kind === 'free' }));
    expect(routes).toEqual(
      DEMO_ROUTES.map((r) => ({ match: `${r.method} ${r.path}`, description: r.description, mimeType: r.mimeType, settlement: r.settlement ?? 'after', free: r.price === 'free' })),
    );
    const prices = (raw(DEMO) as { routes: { price: string }[] }).routes.map((r) => r.price);
    expect(prices).toEqual(DEMO_ROUTES.map((r) => r.price));
  });

  it("fills in the run's values, leaving no variable behind, and writes its own header", () => {
    const filled = fillDemoConfig(read(DEMO), { ...DEMO_PARAMS, port: 0, adminPort: 0 });
    expect(filled).not.toContain('${');
    expect(filled.split('\n')[0]).toMatch(/^# Written by `x402-gateway demo` for one run/);
    const result = parseConfigText(filled, {});
    if (!result.ok) throw new Error(result.problems.join('\n'));
    expect(result.config.listen).toEqual({ host: '127.0.0.1', port: 0 });
    expect(result.config.networks.get('base')).toMatchObject({ rpc: [DEMO_PARAMS.rpcUrl], settle: { mode: 'local', privateKey: DEMO_PARAMS.settlerKey } });
  });

  it('refuses a template with an unknown variable, a value of the wrong kind, or a value it never uses', () => {
    const template = read(DEMO);
    expect(() => fillDemoConfig(template.replace('${DEMO_RPC_URL}', '${DEMO_RPC}'), DEMO_PARAMS)).toThrow(/unknown \$\{DEMO_RPC\}/);
    expect(() => fillDemoConfig(template.replace('port: ${DEMO_PORT}', 'port: "${DEMO_PORT}"'), DEMO_PARAMS)).toThrow(/DEMO_PORT.*bare/);
    expect(() => fillDemoConfig(template.replace('"${DEMO_PAY_TO}"', '"0x2222222222222222222222222222222222222222"'), DEMO_PARAMS)).toThrow(/never uses \$\{DEMO_PAY_TO\}/);
  });
});
