/**
 * Dependencies point inward. The pure core (protocol, routes, pricing, limits, errors) does no
 * I/O and knows no framework; config builds on the core; the payment ports on config; adapters
 * (payments, ledger, metrics, log) on the ports; the HTTP layer on those, seeing ports, never a
 * concrete adapter; the composition roots on everything. The development tools (src/tools/) may
 * use the product, never the reverse. This reads every import of src/ (value, type, dynamic),
 * ranks each file, and fails on an edge that points outward, on an import cycle, and on the
 * forbidden packages and globals below.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
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

/**
 * Each file's layer; an import may point to its own rank or a lower one. First match wins; a file
 * no rule names fails the test until it is given a place. `null`: src/tools/, which stands apart
 * (it may import anything in the product; the product reaches it only through cli.ts, below).
 *
 * errors.ts is core (0): the error catalogue is plain data and classes with no imports, and
 * adapters, HTTP and roots all throw or map its errors; ranking it higher would forbid the core
 * from ever naming one. log.ts (pino options) and metrics.ts (prom-client) are adapters (3):
 * each wraps one I/O package, the ledger observer and the HTTP layer take metrics' type, and
 * only the roots build either. init/ (the `init` command) is a root like cli.ts, which runs it:
 * it reads, fetches and writes files; its two pure halves are held to the core's rules below.
 */
const RANKS: readonly (readonly [RegExp, number | null])[] = [
  [/^tools\//, null],
  [/^(protocol|routes|limits)\/|^(pricing|errors)\.ts$/, 0],
  [/^config\//, 1],
  [/^payments\/ports\.ts$/, 2],
  [/^(payments|ledger)\/|^(metrics|log)\.ts$/, 3],
  [/^http\//, 4],
  [/^(gateway|server|reload|payment-backends|cli|cli-io|main)\.ts$|^init\//, 5],
];
const rankOf = (file: string): number | null | undefined => RANKS.find(([pattern]) => pattern.test(file))?.[1];

/** Outward edges that are allowed, one line each, with why. Every line must still match an edge. */
const OUTWARD_ALLOWED: Readonly<Record<string, string>> = {
  // The core's functions take the compiled config's shapes as values passed in. config/types.ts
  // declares only types (no code, nothing at run time), so these edges are type-only.
  'protocol/challenge.ts -> config/types.ts': 'a challenge is built from a route and its PaymentOptions',
  'protocol/discovery.ts -> config/types.ts': 'discovery lists the RouteConfigs it is given',
  'protocol/challenge-page.ts -> config/types.ts': 'the page shows the PaymentOptions it is given',
  'protocol/select-requirement.ts -> config/types.ts': 'selection picks one of the PaymentOptions it is given',
};

/** Every relative import of a file, resolved to a src/-relative .ts path: value, type, re-export, side effect, dynamic. */
function relativeEdges(file: string, text: string): { readonly to: string; readonly typeOnly: boolean }[] {
  const found = [...text.matchAll(/^\s*(?:import|export)\s+(type\s)?[^;]*?\bfrom\s+'(\.[^']*)'|^\s*import\s+'(\.[^']*)'|\bimport\(\s*'(\.[^']*)'\s*\)/gms)];
  return found.map((m) => ({
    to: normalize(join(dirname(file), m[2] ?? m[3] ?? m[4] ?? '')).replace(/\.js$/, '.ts'),
    typeOnly: m[1] !== undefined,
  }));
}

/** Strongly connected components of more than one file, or a file that imports itself (Tarjan). */
function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) ?? 0);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
      onStack.delete(w);
      component.push(w);
    }
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return components;
}

/** One concrete loop through a component, as `a -> b -> ... -> a`, for the failure message. */
function loopThrough(component: readonly string[], graph: ReadonlyMap<string, readonly string[]>): string {
  const inside = new Set(component);
  const start = [...component].sort()[0] ?? '';
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift() ?? '';
    for (const w of graph.get(v) ?? []) {
      if (w === start) {
        const path = [v];
        for (let p = previous.get(v); p !== undefined; p = previous.get(p)) path.unshift(p);
        return [...path, start].join(' -> ');
      }
      if (inside.has(w) && !previous.has(w) && w !== start) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return component.join(', ');
}

/**
 * Packages the pure core and config compile may use, by imported name. viem only to checksum:
 * in config (the operator's addresses) and in the decoder (the client's addresses); nowhere
 * else in the core, which trusts what config checksummed.
 */
const PURE = /^(protocol\/|routes\/|limits\/|pricing\.ts$|errors\.ts$|config\/(parse|compile-[a-z-]+|deep-freeze|format-path|schema|types|known-networks|yaml-string)\.ts$|init\/(openapi-routes|init-config)\.ts$)/;
const PURE_ALLOWED: Readonly<Record<string, { readonly names: ReadonlySet<string> | 'any'; readonly files?: RegExp }>> = {
  viem: { names: new Set(['getAddress']), files: /^(protocol\/decode-payment|config\/(parse|compile-assets))\.ts$/ },
  zod: { names: 'any' },
  'node:net': { names: new Set(['BlockList', 'isIPv4', 'isIPv6']) },
  // An in-memory bounded map: no I/O, and no clock without a ttl (token-buckets is passed the time).
  'lru-cache': { names: new Set(['LRUCache']), files: /^limits\// },
};
/** Modules with I/O, clocks or a framework. */
const IMPURE_PACKAGES = /^(fastify|@fastify\/|undici|pino|better-sqlite3|pg|prom-client|node:(fs|http|https|child_process|os)|viem\/(accounts|actions))/;

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
            if (allowed === undefined || (allowed.files !== undefined && !allowed.files.test(f.file))) return true;
            const { names } = allowed;
            return names !== 'any' && (i.names.length === 0 || i.names.some((n) => !names.has(n)));
          })
          .map((i) => `${f.file} imports ${i.names.join(', ')} from ${i.from}`),
      );
    expect(offenders).toEqual([]);
    const clocks = all.filter((f) => PURE.test(f.file) && /Date\.now\(|performance\.now\(|new Date\(/.test(f.text));
    expect(clocks.map((f) => f.file)).toEqual([]);
  });

  const graph = new Map(all.map((f) => [f.file, relativeEdges(f.file, f.text)] as const));

  it('gives every file a rank and resolves every relative import to a file', () => {
    expect(all.filter((f) => rankOf(f.file) === undefined).map((f) => `${f.file} has no rank in RANKS`)).toEqual([]);
    const files = new Set(all.map((f) => f.file));
    const dangling = [...graph].flatMap(([file, edges]) => edges.filter((e) => !files.has(e.to)).map((e) => `${file} -> ${e.to}`));
    expect(dangling).toEqual([]);
  });

  it('points every import inward: to its own rank or lower (core < config < ports < adapters < http < roots)', () => {
    const edges = [...graph].flatMap(([file, to]) => to.map((e) => ({ file, ...e })));
    expect(edges.length).toBeGreaterThan(100);
    const outward = edges
      .filter(({ file, to }) => {
        const [from, into] = [rankOf(file), rankOf(to)];
        return typeof from === 'number' && typeof into === 'number' && into > from;
      })
      .map(({ file, to, typeOnly }) => ({ edge: `${file} -> ${to}`, typeOnly }));
    const unexplained = outward.filter((o) => OUTWARD_ALLOWED[o.edge] === undefined);
    expect(unexplained.map((o) => `${o.edge} (rank ${rankOf(o.edge.split(' -> ')[0] ?? '')} -> ${rankOf(o.edge.split(' -> ')[1] ?? '')})`)).toEqual([]);
    // The allowed ones are all type-only, and the list holds no line that no longer matches an edge.
    expect(outward.filter((o) => !o.typeOnly).map((o) => `${o.edge} is a value import`)).toEqual([]);
    expect(Object.keys(OUTWARD_ALLOWED).filter((line) => !outward.some((o) => o.edge === line))).toEqual([]);
  });

  it('has no import cycle in src/', () => {
    const targets = new Map([...graph].map(([file, edges]) => [file, [...new Set(edges.map((e) => e.to))]] as const));
    expect(cyclesOf(targets).map((component) => loopThrough(component, targets))).toEqual([]);
  });

  it('keeps the HTTP layer on the payment ports, never a concrete adapter', () => {
    expect(all.filter((f) => f.file.startsWith('http/')).length).toBeGreaterThan(3);
    const offenders = all
      .filter((f) => f.file.startsWith('http/'))
      .flatMap((f) => f.imports.filter((i) => /payments\/(exact-evm|facilitator|chain)\/|payments\/tx-proof|payment-backends|ledger\//.test(i.from)).map((i) => `${f.file} imports ${i.from}`));
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
