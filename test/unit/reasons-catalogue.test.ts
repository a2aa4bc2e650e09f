/**
 * The reason strings are one list, like the error codes: the catalogue in src/protocol/reasons.ts,
 * the README's "Reason strings" table, and the constants the code uses. A reason written as a
 * literal somewhere else would be a second, unchecked spelling of it, so the source is scanned.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GATEWAY_REASON, REASON, REASON_CATALOGUE, UPSTREAM_STATUS_FAMILY, upstreamStatusReason } from '../../src/protocol/reasons.js';

const SRC = new URL('../../src/', import.meta.url).pathname;


function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/**
 * The string literals of a TypeScript file, comments skipped (a reason named in a comment is
 * documentation). A template literal's `${...}` reads as `${}`. Good enough for this source: it
 * has no regular expression literal holding a quote or a comment opener.
 */
function stringLiterals(text: string): string[] {
  const token = /\/\*[\s\S]*?\*\/|\/\/[^\n]*|'((?:\\.|[^'\\\n])*)'|"((?:\\.|[^"\\\n])*)"|`((?:\\.|[^`\\])*)`/g;
  const out: string[] = [];
  for (const m of text.matchAll(token)) {
    const literal = m[1] ?? m[2] ?? m[3];
    if (literal !== undefined) out.push(literal.replace(/\$\{[^}]*\}/g, '${}'));
  }
  return out;
}

/** A catalogue name as a matcher: `<code>` stands for a number or an interpolation. */
const matchers = Object.keys(REASON_CATALOGUE).map((name) => ({
  name,
  re: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('<code>', '(?:\\d+|\\$\\{\\})')}$`),
}));

/** `file: reason` for every catalogued reason spelled as a literal outside reasons.ts, once per file. */
const literals = [
  ...new Set(
    files(SRC)
      .map((path) => relative(SRC, path))
      .filter((file) => file !== 'protocol/reasons.ts')
      .flatMap((file) =>
        stringLiterals(readFileSync(join(SRC, file), 'utf8')).flatMap((literal) =>
          matchers.filter((m) => m.re.test(literal)).map((m) => `${file}: ${m.name}`),
        ),
      ),
  ),
];

describe('reason catalogue', () => {
  it('matches the README table reason for reason, where for where', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('\n## Reason strings\n');
    expect(start).toBeGreaterThan(-1);
    const end = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, end === -1 ? undefined : end);
    const rows = [...section.matchAll(/^\|\s*`([^`]+)`\s*\|\s*`?([a-z0-9]+)`?\s*\|/gm)].map((m) => `${m[1]} ${m[2]}`);
    const catalogue = Object.entries(REASON_CATALOGUE).map(([reason, spec]) => `${reason} ${spec.where}`);
    expect(rows.sort()).toEqual(catalogue.sort());
  });

  it('lists every constant, and nothing that is not one', () => {
    const constants = [...Object.values(REASON), ...Object.values(GATEWAY_REASON), UPSTREAM_STATUS_FAMILY];
    expect(new Set(constants).size).toBe(constants.length);
    expect(Object.keys(REASON_CATALOGUE).sort()).toEqual(constants.sort());
  });

  it('gives every entry a one-line meaning', () => {
    for (const [reason, spec] of Object.entries(REASON_CATALOGUE)) {
      expect(reason).toMatch(/^[a-z0-9]+(?:_[a-z0-9<>]+)*$/);
      expect(spec.meaning, reason).toMatch(/^[^\n|]+\.$/);
    }
  });

  it('spells the upstream status family as its catalogue entry says', () => {
    const family = matchers.find((m) => m.name === UPSTREAM_STATUS_FAMILY);
    expect(family?.re.test(upstreamStatusReason(502))).toBe(true);
    expect(upstreamStatusReason(404)).toBe('upstream_status_404');
  });

  it('finds the literals it looks for', () => {
    expect(stringLiterals("a('x_y'); // 'no_no'\n/* \"no\" */ `p_${q}`")).toEqual(['x_y', 'p_${}']);
  });

  it('keeps reason literals out of src/: every use goes through the constants', () => {
    expect(literals, 'use the constant from src/protocol/reasons.ts').toEqual([]);
  });
});
