/**
 * The demo's gateway config: config/demo.yaml, with this run's values filled in. It is YAML text
 * so the demo goes through the same parser and validation as an operator's file (and the file it
 * writes is a working starting point).
 *
 * Why a substitution of its own and not the loader's `${VAR}` expansion: the demo writes the
 * filled-in file for `receipts --config` and for the operator to copy, so the file must stand on
 * its own (no variables left to set), and the loader expands into strings only, where ports are
 * numbers. The result still goes through the loader, as any file does.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { yamlString } from '../../config/yaml-string.js';

/** One priced (or free) endpoint of the demo upstream, as routed by the gateway. */
export interface DemoRoute {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** As written in the config: a dollar price or `free`. */
  readonly price: string;
  readonly description: string;
  readonly mimeType: string;
  /** Left to the default (`after`) when absent. */
  readonly settlement?: 'before' | 'after' | 'deferred';
}

/** What the banner prints and the demo upstream serves; config/demo.yaml routes exactly these (a test holds them equal). */
export const DEMO_ROUTES: readonly DemoRoute[] = [
  { method: 'GET', path: '/v1/weather', price: '$0.01', settlement: 'after', description: 'Current weather for ?city=', mimeType: 'application/json' },
  { method: 'POST', path: '/v1/echo', price: '$0.02', description: 'Echoes a JSON body', mimeType: 'application/json' },
  { method: 'GET', path: '/v1/stream', price: '$0.005', description: 'A few server-sent events', mimeType: 'text/event-stream' },
  { method: 'GET', path: '/v1/time', price: '$0.001', settlement: 'deferred', description: 'The time, served at once; settled in batches', mimeType: 'application/json' },
  { method: 'GET', path: '/health', price: 'free', description: 'Upstream health', mimeType: 'application/json' },
];

export interface DemoConfigParams {
  readonly rpcUrl: string;
  /** The gateway's own key: submits transferWithAuthorization and pays the gas. */
  readonly settlerKey: `0x${string}`;
  readonly payTo: `0x${string}`;
  readonly upstreamUrl: string;
  readonly host: string;
  readonly port: number;
  readonly adminPort: number;
  /** Absolute, so `receipts --config` finds the same file from any directory. */
  readonly ledgerPath: string;
}

/**
 * config/demo.yaml. config/ sits at the package root; this module is src/tools/demo/ in a
 * checkout run through tsx, and dist/src/tools/demo/ once built, one level deeper.
 */
export const DEMO_CONFIG_FILE = fileURLToPath(new URL(`${import.meta.url.endsWith('.ts') ? '../../..' : '../../../..'}/config/demo.yaml`, import.meta.url));

/** The `${DEMO_*}` names of config/demo.yaml and where each value comes from. */
function demoValues(p: DemoConfigParams): Readonly<Record<string, string | number>> {
  return {
    DEMO_HOST: p.host,
    DEMO_PORT: p.port,
    DEMO_ADMIN_PORT: p.adminPort,
    DEMO_PAY_TO: p.payTo,
    DEMO_RPC_URL: p.rpcUrl,
    DEMO_SETTLER_KEY: p.settlerKey,
    DEMO_UPSTREAM_URL: p.upstreamUrl,
    DEMO_LEDGER_PATH: p.ledgerPath,
  };
}

/** A `${DEMO_*}` reference, with the double quotes around it when it has them. */
const DEMO_REF = /"\$\{(DEMO_[A-Z_]+)\}"|\$\{(DEMO_[A-Z_]+)\}/g;

const HEADER = `# Written by \`x402-gateway demo\` for one run, from config/demo.yaml: a local anvil chain posing
# as Base (chain id 8453), with a test USDC at Base's USDC address. Every key is explained in
# gateway.example.yaml. The private key below is anvil's public dev key #0: never use it on a
# real network.
`;

/**
 * Fills a demo config template. A quoted `"${DEMO_X}"` becomes that string as a YAML scalar
 * (`${` escaped, so the loader leaves it alone), a bare `${DEMO_X}` a number; an unknown name, a
 * value of the other kind, or a value the template never uses is a bug, and throws. The template's
 * leading comment block (up to the first blank line) is replaced by a header for the written file.
 * Pure.
 */
export function fillDemoConfig(template: string, p: DemoConfigParams): string {
  const values = demoValues(p);
  const used = new Set<string>();
  const body = template.replace(DEMO_REF, (_whole, quoted: string | undefined, bare: string | undefined) => {
    const name = quoted ?? bare ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`config/demo.yaml: unknown \${${name}}`);
    if (typeof value !== (quoted === undefined ? 'number' : 'string')) {
      throw new Error(`config/demo.yaml: \${${name}} must be written ${typeof value === 'string' ? 'in double quotes (a string)' : 'bare (a number)'}`);
    }
    used.add(name);
    return typeof value === 'string' ? yamlString(value) : String(value);
  });
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length > 0) throw new Error(`config/demo.yaml: never uses ${unused.map((n) => `\${${n}}`).join(', ')}`);
  const start = body.search(/\n\s*\n/);
  return HEADER + (start < 0 ? body : body.slice(start + 1));
}

/** The complete config file for a demo run: config/demo.yaml, filled in. Reads the file. */
export function demoConfigYaml(p: DemoConfigParams, file: string = DEMO_CONFIG_FILE): string {
  return fillDemoConfig(readFileSync(file, 'utf8'), p);
}
