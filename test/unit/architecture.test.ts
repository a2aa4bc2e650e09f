/**
 * Dependencies point inward. The pure core (protocol, routes, pricing, config parsing) does no
 * I/O and knows no framework; the HTTP layer sees payment ports, never a concrete adapter; only
 * the composition root wires concrete things. This reads the import lines of src/ and fails on a
 * forbidden edge.
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

/** Value imports (type-only imports cost nothing at run time and carry no I/O). */
function valueImports(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return [...text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1] ?? '');
}

const all = files(SRC).map((path) => ({ file: relative(SRC, path), imports: valueImports(path) }));

/** The pure core may use viem only for its pure address and unit helpers, and zod for schemas. */
const PURE = /^(protocol\/|routes\/|pricing\.ts$|config\/(parse|schema|types|known-networks)\.ts$)/;
const PURE_ALLOWED_PACKAGES = new Set(['viem', 'zod', 'node:net']);
/** Modules with I/O, clocks or a framework. */
const IMPURE_PACKAGES = /^(fastify|@fastify\/|undici|pino|better-sqlite3|prom-client|node:(fs|http|https|child_process|os)|viem\/(accounts|actions))/;

describe('architecture', () => {
  it('finds the source files', () => {
    expect(all.length).toBeGreaterThan(30);
  });

  it('keeps the core pure: no framework, no I/O, no clock', () => {
    const offenders = all
      .filter((f) => PURE.test(f.file))
      .flatMap((f) => f.imports.filter((i) => !i.startsWith('.') && !PURE_ALLOWED_PACKAGES.has(i)).map((i) => `${f.file} imports ${i}`));
    expect(offenders).toEqual([]);
    const clocks = all.filter((f) => PURE.test(f.file) && /Date\.now\(|performance\.now\(/.test(readFileSync(join(SRC, f.file), 'utf8')));
    expect(clocks.map((f) => f.file)).toEqual([]);
  });

  it('keeps the HTTP layer on the payment ports, never a concrete adapter', () => {
    const offenders = all
      .filter((f) => f.file.startsWith('http/'))
      .flatMap((f) => f.imports.filter((i) => /payments\/(exact-evm|facilitator|tx-proof|backends|chain-client)|ledger\//.test(i)).map((i) => `${f.file} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  // The devchain owns a child process (anvil) and must kill it if the parent exits unexpectedly.
  const PROCESS_OWNERS = new Set(['main.ts', 'devchain/anvil.ts']);

  it('lets only main.ts (and the devchain, for its child) touch process', () => {
    const touching = all.filter((f) => !PROCESS_OWNERS.has(f.file) && /\bprocess\.(env|argv|exit|on|once|stdout|stderr|exitCode)\b/.test(readFileSync(join(SRC, f.file), 'utf8')));
    expect(touching.map((f) => f.file)).toEqual([]);
  });

  it('keeps I/O packages out of the core and names no barrel or utils file', () => {
    expect(all.filter((f) => PURE.test(f.file) && f.imports.some((i) => IMPURE_PACKAGES.test(i))).map((f) => f.file)).toEqual([]);
    expect(all.filter((f) => /(^|\/)(index|utils?)\.ts$/.test(f.file)).map((f) => f.file)).toEqual([]);
  });
});
