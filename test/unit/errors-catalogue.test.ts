/** The README's error table and the code catalogue are one list: neither may drift from the other. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';

describe('error catalogue', () => {
  it('matches the README table code for code, status for status', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const rows = [...readme.matchAll(/^\|\s*`(GW_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => [m[1], Number(m[2])]);
    const catalogue = Object.entries(ERROR_CODES).map(([code, spec]) => [code, spec.status]);
    expect(rows.sort()).toEqual(catalogue.sort());
  });

  it('names every code GW_ERR_<AREA>_<WHAT>', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(code).toMatch(/^GW_ERR_[A-Z]+_[A-Z_]+$/);
  });
});
