/**
 * The README's "Environment variables" table (under "Reference for operators") against what is
 * read: every variable `src/` reads from the environment (`process.env.X`, `env['X']`, a
 * `const ..._VAR = 'X'` naming one) and every `${X}` a shipped config references is listed; and
 * every listed variable is still read or referenced somewhere. Plain text reads.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

function files(dir: string, pattern: RegExp): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(join(ROOT, path)).isDirectory()) return files(path, pattern);
    return pattern.test(entry) ? [path] : [];
  });
}

const SOURCES = files('src', /\.ts$/);
/** The shipped configs; config/demo.yaml's `${DEMO_*}` are the demo's own placeholders, never environment variables. */
const CONFIGS = ['gateway.example.yaml', ...files('config', /\.ya?ml$/).filter((f) => !f.endsWith('kustomization.yaml'))];
const DEMO_PLACEHOLDER = /^DEMO_/;

/** Environment variables the code reads. */
function readInSource(text: string): string[] {
  const patterns = [
    /\benv(?:\?\.|\.)([A-Z][A-Z0-9_]+)\b/g,
    /\benv\[\s*['"`]([A-Z][A-Z0-9_]+)['"`]\s*\]/g,
    /\bconst [A-Z0-9_]*_VAR\s*=\s*['"`]([A-Z][A-Z0-9_]+)['"`]/g,
  ];
  return patterns.flatMap((p) => [...text.matchAll(p)].map((m) => m[1] as string));
}

/** `${X}` references in a config's values (comments are not expanded, and explain `${VAR}` itself). */
function referencedInConfig(text: string): string[] {
  return [...JSON.stringify(parse(text)).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map((m) => m[1] as string).filter((n) => !DEMO_PLACEHOLDER.test(n));
}

/** The first-column names of the README's environment variable table. */
function readmeTable(): string[] {
  const readme = read('README.md');
  const start = readme.indexOf('#### Environment variables');
  if (start < 0) throw new Error('README.md has no "#### Environment variables" section');
  const end = readme.indexOf('\n#### ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => /^\| `([A-Z][A-Z0-9_]+)`/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}

describe('README: Reference for operators, environment variables', () => {
  const table = readmeTable();

  it('lists every variable src/ reads', () => {
    const read = new Set(SOURCES.flatMap((f) => readInSource(readFileSync(join(ROOT, f), 'utf8'))));
    // The scan finds what it should: the config path, the settler's key and RPC (init), the pay tool's key.
    expect([...read]).toEqual(expect.arrayContaining(['X402_GATEWAY_CONFIG', 'SETTLER_KEY', 'BASE_RPC_URL', 'X402_PAYER_KEY']));
    for (const name of read) expect(table, `${name} is read in src/ but not in the README's table`).toContain(name);
  });

  it('lists every ${VAR} the shipped configs reference', () => {
    const referenced = new Set(CONFIGS.flatMap((f) => referencedInConfig(read(f))));
    expect(referenced.size).toBeGreaterThan(0);
    for (const name of referenced) expect(table, `${name} is referenced by a config but not in the README's table`).toContain(name);
  });

  it('lists nothing that nothing reads any more', () => {
    const everything = [...SOURCES, ...CONFIGS].map((f) => read(f)).join('\n');
    for (const name of table) expect(everything, `${name} is in the README's table but nowhere in src/ or the configs`).toContain(name);
  });
});
