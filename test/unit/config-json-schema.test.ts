/**
 * config/gateway.schema.json is what the config schema generates (`npm run config:schema`), and
 * it accepts what the gateway accepts, environment references included: an editor checking a file
 * against it must not flag a config that `validate` passes.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseConfigText } from '../../src/config/load.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('config/gateway.schema.json', () => {
  it('is the schema the config schema generates now (run `npm run config:schema` after changing it)', () => {
    expect(JSON.parse(read('config/gateway.schema.json'))).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('is named on the first line of gateway.example.yaml, for the YAML language server', () => {
    expect(read('gateway.example.yaml').split('\n')[0]).toBe('# yaml-language-server: $schema=./config/gateway.schema.json');
  });

  it('accepts gateway.example.yaml with its ${VAR} references as written, and flags what the gateway refuses', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(JSON.parse(read('config/gateway.schema.json')) as object);
    const example = parse(read('gateway.example.yaml')) as Record<string, unknown>;
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
    expect(parseConfigText(read('gateway.example.yaml'), { SETTLER_KEY: `0x${'11'.repeat(32)}`, BASE_RPC_URL: 'http://127.0.0.1:8545' }).ok).toBe(true);
    expect(validate({ ...example, listen: { port: 'eighty' } })).toBe(false);
    expect(validate({ ...example, typo: true })).toBe(false);
    expect(validate({ ...example, payTo: 'not an address' })).toBe(false);
  });
});
