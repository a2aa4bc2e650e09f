import { describe, expect, it } from 'vitest';
import { decodeBase64Json, encodeBase64Json, MAX_BASE64_JSON_LENGTH } from '../../src/protocol/base64.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('decodeBase64Json', () => {
  it('decodes standard padded base64 of a JSON object, UTF-8 included', () => {
    expect(decodeBase64Json(b64('{"a":1,"b":"ünï"}'))).toEqual({ ok: true, value: { a: 1, b: 'ünï' } });
  });

  it('round-trips encodeBase64Json', () => {
    const value = { x402Version: 2, nested: { list: [1, '2'] }, text: '€ and 🐙' };
    expect(decodeBase64Json(encodeBase64Json(value))).toEqual({ ok: true, value });
  });

  it.each([
    ['empty', ''],
    ['URL-safe alphabet', b64('{"k":"??>>"}').replace(/\+/g, '-').replace(/\//g, '_')],
    ['missing padding', b64('{"a":1}').replace(/=+$/, '')],
    ['too much padding', `${b64('{"ab":1}')}==`],
    ['padding in the middle', `${b64('{"a":1}')}${b64('{}')}`],
    ['leading space', ` ${b64('{"a":1}')}`],
    ['trailing newline', `${b64('{"a":1}')}\n`],
    ['inner space', b64('{"abc":1}').replace(/^(.{4})/, '$1 ')],
    ['non-zero padding bits', 'e30='.replace('0', '1')],
    ['stray characters', `${b64('{"a":1}').slice(0, -4)}*A==`],
  ])('refuses %s as invalid_base64', (_name, text) => {
    const result = decodeBase64Json(text);
    expect(result).toMatchObject({ ok: false, reason: 'invalid_base64' });
  });

  it('checks the URL-safe input really is URL-safe base64 of the same bytes', () => {
    // Guard for the case above: the text contains - or _ and Buffer alone would accept it.
    const urlSafe = b64('{"k":"??>>"}').replace(/\+/g, '-').replace(/\//g, '_');
    expect(urlSafe).toMatch(/[-_]/);
    expect(Buffer.from(urlSafe, 'base64').toString('utf8')).toBe('{"k":"??>>"}');
    expect(decodeBase64Json(urlSafe)).toMatchObject({ message: expect.stringContaining('URL-safe') });
  });

  it('refuses text over the size limit before decoding it', () => {
    const big = b64(JSON.stringify({ pad: 'x'.repeat(MAX_BASE64_JSON_LENGTH) }));
    expect(decodeBase64Json(big)).toMatchObject({ ok: false, reason: 'header_too_large' });
    expect(decodeBase64Json(b64('{"a":1}'), 4)).toMatchObject({ ok: false, reason: 'header_too_large' });
  });

  it('accepts text exactly at the limit', () => {
    const text = b64(`{"p":"${'x'.repeat((MAX_BASE64_JSON_LENGTH / 4) * 3 - 8)}"}`);
    expect(text.length).toBe(MAX_BASE64_JSON_LENGTH);
    expect(decodeBase64Json(text).ok).toBe(true);
  });

  it('refuses bytes that are not UTF-8', () => {
    const text = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('base64');
    expect(decodeBase64Json(text)).toMatchObject({ ok: false, reason: 'invalid_utf8' });
  });

  it('refuses a UTF-8 byte-order mark instead of silently dropping it', () => {
    expect(decodeBase64Json(b64('\uFEFF{"a":1}'))).toMatchObject({ ok: false, reason: 'invalid_json' });
  });

  it.each([['{'], ['{"a":1,}'], ["{'a':1}"], ['not json'], ['{"a":1} trailing']])('refuses invalid JSON %j', (json) => {
    expect(decodeBase64Json(b64(json))).toMatchObject({ ok: false, reason: 'invalid_json' });
  });

  it.each([['[]'], ['[{"a":1}]'], ['null'], ['1'], ['"text"'], ['true']])('refuses non-object JSON %s', (json) => {
    expect(decodeBase64Json(b64(json))).toMatchObject({ ok: false, reason: 'not_a_json_object' });
  });
});
