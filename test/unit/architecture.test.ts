/**
 * Dependencies point inward. The pure core (protocol, routes, pricing, config parsing) does no
 * I/O and knows no framework; the HTTP layer sees payment ports, never a concrete adapter; only
 * the composition root wires concrete things; the development tools (src/tools/) may use the
 * product, never the reverse. This reads the import lines of src/ and fails on a forbidden edge.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  readonly from: string;
  /** Named bindings, when the import lists them. */
  readonly names: readonly string[];
}

/**
 * Value imports: `import ... from`, `export ... from`, side-effect and dynamic imports (type-only
 * imports cost nothing at run time and carry no I/O).
 */
function valueImports(text: string): Import[] {
  const staticOnes = [...text.matchAll(/^(?:import|export)\s+(?!type\s)([^;]*?)\s*from\s+'([^']+)'/gms)].map((m) => ({
    from: m[2] ?? '',
    names: [...(m[1] ?? '').matchAll(/\b([A-Za-z_$][\w$]*)\b(?=\s*[,}])/g)].map((n) => n[1] ?? ''),
  }));
  const bare = [...text.matchAll(/^import\s+'([^']+)'/gm)].map((m) => ({ from: m[1] ?? '', names: [] }));
  const dynamic = [...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => ({ from: m[1] ?? '', names: ['*'] }));
  return [...staticOnes, ...bare, ...dynamic];
}

const all = files(SRC).map((path) => {
  const text = readFileSync(path, 'utf8');
  return { file: relative(SRC, path), text, imports: valueImports(text) };
});

/** The pure core may use viem only for its pure address and unit helpers, zod for schemas, and node:net to parse addresses. */
const PURE = /^(protocol\/|routes\/|pricing\.ts$|config\/(parse|schema|types|known-networks)\.ts$)/;
const PURE_ALLOWED: Readonly<Record<string, ReadonlySet<string> | 'any'>> = {
  viem: new Set(['getAddress', 'formatUnits', 'isAddress', 'isAddressEqual']),
  zod: 'any',
  'node:net': new Set(['BlockList', 'isIPv4', 'isIPv6']),
};
/** Modules with I/O, clocks or a framework. */
const IMPURE_PACKAGES = /^(fastify|@fastify\/|undici|pino|better-sqlite3|prom-client|node:(fs|http|https|child_process|os)|viem\/(accounts|actions))/;

describe('architecture', () => {
  it('finds the source files', () => {
    expect(all.length).toBeGreaterThan(30);
  });

  it('keeps the core pure: no framework, no I/O, no clock', () => {
    expect(all.filter((f) => PURE.test(f.file)).length).toBeGreaterThan(5);
    const offenders = all
      .filter((f) => PURE.test(f.file))
      .flatMap((f) =>
        f.imports
          .filter((i) => !i.from.startsWith('.'))
          .filter((i) => {
            const allowed = PURE_ALLOWED[i.from];
            return allowed === undefined || (allowed !== 'any' && (i.names.length === 0 || i.names.some((n) => !allowed.has(n))));
          })
          .map((i) => `${f.file} imports ${i.names.join(', ')} from ${i.from}`),
      );
    expect(offenders).toEqual([]);
    const clocks = all.filter((f) => PURE.test(f.file) && /Date\.now\(|performance\.now\(|new Date\(/.test(f.text));
    expect(clocks.map((f) => f.file)).toEqual([]);
  });

  it('keeps the HTTP layer on the payment ports, never a concrete adapter', () => {
    expect(all.filter((f) => f.file.startsWith('http/')).length).toBeGreaterThan(3);
    const offenders = all
      .filter((f) => f.file.startsWith('http/'))
      .flatMap((f) => f.imports.filter((i) => /payments\/(exact-evm|facilitator|tx-proof|backends|chain-client)|ledger\//.test(i.from)).map((i) => `${f.file} imports ${i.from}`));
    expect(offenders).toEqual([]);
  });

  // The devchain owns a child process (anvil) and must kill it if the parent exits unexpectedly.
  const PROCESS_OWNERS = new Set(['main.ts', 'tools/devchain/anvil.ts']);

  it('lets only main.ts (and the devchain, for its child) touch process', () => {
    const touching = all.filter((f) => !PROCESS_OWNERS.has(f.file) && /\bprocess\.(env|argv|exit|on|once|stdout|stderr|exitCode)\b/.test(f.text));
    expect(touching.map((f) => f.file)).toEqual([]);
  });

  // src/tools/ (demo, dev chain, pay) needs devDependencies and is left out of the production
  // image, so the product must run without it. Tools may import the product, not the other way.
  const TOOLS = /^tools\//;
  /** The product's only way in: cli.ts loads each tool command lazily and explains its absence. */
  const TOOL_ENTRIES_ALLOWED = new Set(['cli.ts -> ./tools/demo/demo-command.js', 'cli.ts -> ./tools/pay-command.js']);
  const devDependencies = Object.keys((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
  const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
  /** Every module specifier, type-only imports included: a type from tools/ would still tie the product to it. */
  const specifiers = (text: string) => [...text.matchAll(/(?:\bfrom\s+|\bimport\(\s*|^import\s+)'([^']+)'/gm)].map((m) => m[1] ?? '');

  it('keeps the product free of src/tools/ but for the lazy entries in cli.ts', () => {
    expect(all.filter((f) => TOOLS.test(f.file)).length).toBeGreaterThan(5);
    const edges = all
      .filter((f) => !TOOLS.test(f.file))
      .flatMap((f) => specifiers(f.text).filter((from) => /(^|\/)tools\//.test(from)).map((from) => `${f.file} -> ${from}`));
    expect(edges.filter((e) => !TOOL_ENTRIES_ALLOWED.has(e))).toEqual([]);
    expect(new Set(edges)).toEqual(TOOL_ENTRIES_ALLOWED);
  });

  it('imports no devDependency at run time outside src/tools/ (type-only imports are fine)', () => {
    expect(devDependencies).toContain('@x402/core');
    const offenders = all
      .filter((f) => !TOOLS.test(f.file))
      .flatMap((f) => f.imports.filter((i) => !i.from.startsWith('.') && devDependencies.includes(packageOf(i.from))).map((i) => `${f.file} imports ${i.from}`));
    expect(offenders).toEqual([]);
  });

  it('lets no tool import cli.ts, which loads them (CliIo lives in cli-io.ts)', () => {
    const cycles = all.filter((f) => TOOLS.test(f.file) && specifiers(f.text).some((from) => /^(\.\.\/)+cli\.js$/.test(from)));
    expect(cycles.map((f) => f.file)).toEqual([]);
  });

  it('keeps I/O packages out of the core and names no barrel or utils file', () => {
    expect(all.filter((f) => PURE.test(f.file) && f.imports.some((i) => IMPURE_PACKAGES.test(i.from))).map((f) => f.file)).toEqual([]);
    expect(all.filter((f) => /(^|\/)(index|utils?)\.ts$/.test(f.file)).map((f) => f.file)).toEqual([]);
  });
});
