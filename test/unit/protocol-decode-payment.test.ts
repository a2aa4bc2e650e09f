import { describe, expect, it } from 'vitest';
import { encodeBase64Json } from '../../src/protocol/base64.js';
import { decodePaymentHeader, MAX_SIGNATURE_BYTES, type DecodeOutcome } from '../../src/protocol/decode-payment.js';
import { BASE_USDC, PAY_TO } from '../helpers/options.js';

type Json = Record<string, unknown>;

const FROM = '0x857b06519E91e3A54538791bDbb0E22373e36b66';
const SIGNATURE = `0x${'ab'.repeat(65)}`;
const NONCE = `0x${'1f'.repeat(32)}`;

const authorization = (): Json => ({
  from: FROM,
  to: PAY_TO,
  value: '10000',
  validAfter: '0',
  validBefore: '1767225900',
  nonce: NONCE,
});

/** What x402@1.2.0 and @x402/evm's v1 client send, field for field. */
const v1 = (): Json => ({
  x402Version: 1,
  scheme: 'exact',
  network: 'base',
  payload: { signature: SIGNATURE, authorization: authorization() },
});

/** What @x402/core's x402Client sends for an @x402/evm exact (EIP-3009) payment. */
const v2 = (): Json => ({
  x402Version: 2,
  payload: { authorization: authorization(), signature: SIGNATURE },
  resource: { url: 'https://gw.example.com/v1/weather?city=Paris', description: 'Current weather', mimeType: 'application/json' },
  accepted: {
    scheme: 'exact',
    network: 'eip155:8453',
    amount: '10000',
    asset: BASE_USDC,
    payTo: PAY_TO,
    maxTimeoutSeconds: 300,
    extra: { name: 'USD Coin', version: '2' },
  },
});

/** A deep copy of `obj` with the field at `path` set (or deleted, for `undefined`). */
function edit(obj: Json, path: string, value: unknown): Json {
  const copy = structuredClone(obj);
  const keys = path.split('.');
  const last = keys.pop();
  let target: Json = copy;
  for (const key of keys) target = target[key] as Json;
  if (last === undefined) throw new Error('empty path');
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}

const decodeV2 = (obj: Json): DecodeOutcome => decodePaymentHeader({ paymentSignature: encodeBase64Json(obj) });
const decodeV1 = (obj: Json): DecodeOutcome => decodePaymentHeader({ xPayment: encodeBase64Json(obj) });

function expectMalformed(outcome: DecodeOutcome, reason: string, messagePart?: string): void {
  expect(outcome.kind).toBe('malformed');
  if (outcome.kind !== 'malformed') return;
  expect(outcome.reason).toBe(reason);
  if (messagePart !== undefined) expect(outcome.message).toContain(messagePart);
}

describe('decodePaymentHeader: headers', () => {
  it('returns none without a payment header', () => {
    expect(decodePaymentHeader({})).toEqual({ kind: 'none' });
    expect(decodePaymentHeader({ paymentSignature: undefined, xPayment: undefined })).toEqual({ kind: 'none' });
  });

  it('prefers PAYMENT-SIGNATURE when both headers are present', () => {
    const outcome = decodePaymentHeader({ paymentSignature: encodeBase64Json(v2()), xPayment: encodeBase64Json(v1()) });
    expect(outcome).toMatchObject({ kind: 'ok', payment: { x402Version: 2, header: 'payment-signature' } });
  });

  it('does not fall back to X-PAYMENT when PAYMENT-SIGNATURE is malformed', () => {
    const outcome = decodePaymentHeader({ paymentSignature: 'not base64!', xPayment: encodeBase64Json(v1()) });
    expectMalformed(outcome, 'invalid_base64');
  });

  it('branches on the decoded x402Version, not on the header name', () => {
    expect(decodePaymentHeader({ xPayment: encodeBase64Json(v2()) })).toMatchObject({
      kind: 'ok',
      payment: { x402Version: 2, header: 'x-payment', network: 'eip155:8453' },
    });
    expect(decodePaymentHeader({ paymentSignature: encodeBase64Json(v1()) })).toMatchObject({
      kind: 'ok',
      payment: { x402Version: 1, header: 'payment-signature', network: 'base' },
    });
  });

  it('treats an empty header as present and malformed', () => {
    expectMalformed(decodePaymentHeader({ paymentSignature: '' }), 'invalid_base64');
    expectMalformed(decodePaymentHeader({ xPayment: '' }), 'invalid_base64');
  });

  it('passes the base64 layer refusals through', () => {
    const urlSafe = encodeBase64Json({ ...v2(), pad: '???>>>' }).replace(/\+/g, '-').replace(/\//g, '_');
    expect(urlSafe).toMatch(/[-_]/);
    expectMalformed(decodePaymentHeader({ paymentSignature: urlSafe }), 'invalid_base64', 'URL-safe');
    const padded = [0, 1, 2].map((n) => encodeBase64Json({ ...v2(), pad: 'x'.repeat(n) })).find((t) => t.endsWith('='));
    expect(padded).toBeDefined();
    expectMalformed(decodePaymentHeader({ paymentSignature: (padded ?? '').replace(/=+$/, '') }), 'invalid_base64');
    expectMalformed(decodePaymentHeader({ paymentSignature: `${encodeBase64Json(v2())} ` }), 'invalid_base64');
    expectMalformed(
      decodePaymentHeader({ paymentSignature: encodeBase64Json({ ...v2(), pad: 'x'.repeat(20_000) }) }),
      'header_too_large',
    );
    expectMalformed(decodePaymentHeader({ paymentSignature: Buffer.from('{"x402Version":2').toString('base64') }), 'invalid_json');
    expectMalformed(decodePaymentHeader({ paymentSignature: Buffer.from('[1]').toString('base64') }), 'not_a_json_object');
    expectMalformed(decodePaymentHeader({ paymentSignature: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]).toString('base64') }), 'invalid_utf8');
  });
});

describe('decodePaymentHeader: valid payloads', () => {
  it('decodes a v2 payload into the normalised form', () => {
    const raw = v2();
    const outcome = decodeV2(raw);
    expect(outcome).toEqual({
      kind: 'ok',
      payment: {
        x402Version: 2,
        header: 'payment-signature',
        scheme: 'exact',
        network: 'eip155:8453',
        accepted: raw['accepted'],
        payload: {
          signature: SIGNATURE,
          authorization: {
            from: FROM,
            to: PAY_TO,
            value: 10_000n,
            validAfter: 0n,
            validBefore: 1_767_225_900n,
            nonce: NONCE,
          },
        },
        raw,
      },
    });
  });

  it('decodes a v1 payload into the normalised form', () => {
    const raw = v1();
    const outcome = decodeV1(raw);
    expect(outcome).toMatchObject({
      kind: 'ok',
      payment: { x402Version: 1, header: 'x-payment', scheme: 'exact', network: 'base', accepted: undefined, raw },
    });
    if (outcome.kind !== 'ok') return;
    expect(outcome.payment.payload.authorization.value).toBe(10_000n);
  });

  it('checksums addresses and lowercases nonce and signature (one replay key per bytes32)', () => {
    const upper = edit(edit(edit(v1(), 'payload.authorization.nonce', `0x${'AB'.repeat(32)}`), 'payload.signature', `0x${'CD'.repeat(65)}`), 'payload.authorization.from', FROM.toLowerCase());
    const withTo = edit(upper, 'payload.authorization.to', PAY_TO.toLowerCase());
    const outcome = decodeV1(withTo);
    expect(outcome.kind).toBe('ok');
    if (outcome.kind !== 'ok') return;
    const { payload } = outcome.payment;
    expect(payload.authorization.nonce).toBe(`0x${'ab'.repeat(32)}`);
    expect(payload.signature).toBe(`0x${'cd'.repeat(65)}`);
    expect(payload.authorization.from).toBe(FROM);
    expect(payload.authorization.to).toBe(PAY_TO);
  });

  it('accepts the extremes: 0 and 2^256-1', () => {
    const max = (2n ** 256n - 1n).toString();
    const outcome = decodeV2(edit(edit(v2(), 'payload.authorization.value', max), 'payload.authorization.validAfter', '0'));
    expect(outcome.kind).toBe('ok');
    if (outcome.kind !== 'ok') return;
    expect(outcome.payment.payload.authorization.value).toBe(2n ** 256n - 1n);
    expect(decodeV2(edit(v2(), 'accepted.amount', max)).kind).toBe('ok');
  });

  it('accepts a smart-wallet signature up to the limit', () => {
    expect(decodeV2(edit(v2(), 'payload.signature', `0x${'11'.repeat(MAX_SIGNATURE_BYTES)}`)).kind).toBe('ok');
  });

  it('accepts v2 without resource and extensions, or with them null, as the core client schema does', () => {
    expect(decodeV2(edit(v2(), 'resource', undefined)).kind).toBe('ok');
    expect(decodeV2(edit(v2(), 'resource', null)).kind).toBe('ok');
    expect(decodeV2(edit(v2(), 'extensions', null)).kind).toBe('ok');
    expect(decodeV2(edit(v2(), 'extensions', { bazaar: { info: {}, schema: {} } })).kind).toBe('ok');
  });

  it('normalises a missing accepted.extra to {} (selection then refuses it)', () => {
    const outcome = decodeV2(edit(v2(), 'accepted.extra', undefined));
    expect(outcome).toMatchObject({ kind: 'ok', payment: { accepted: { extra: {} } } });
  });
});

describe('decodePaymentHeader: refusals', () => {
  it.each([
    ['missing', undefined],
    ['3', 3],
    ['0', 0],
    ['"2" as a string', '2'],
    ['2.5', 2.5],
    ['null', null],
  ])('refuses x402Version %s', (_name, version) => {
    expectMalformed(decodeV2(edit(v2(), 'x402Version', version)), 'invalid_x402_version');
  });

  it('refuses a scheme other than exact with its own reason', () => {
    expectMalformed(decodeV1(edit(v1(), 'scheme', 'upto')), 'unsupported_scheme', 'upto');
    expectMalformed(decodeV2(edit(v2(), 'accepted.scheme', 'upto')), 'unsupported_scheme');
    expectMalformed(decodeV1(edit(v1(), 'scheme', 1)), 'invalid_payload', 'scheme');
  });

  const numbers = ['', ' 1', '1 ', '+1', '-1', '0x10', '010', '00', '1e6', '1.0', '1_000', '١', '10000\n'];
  const numberFields = ['payload.authorization.value', 'payload.authorization.validAfter', 'payload.authorization.validBefore'];

  for (const field of numberFields) {
    it.each(numbers)(`refuses v1 and v2 ${field} = %j`, (text) => {
      expectMalformed(decodeV1(edit(v1(), field, text)), 'invalid_payload', field);
      expectMalformed(decodeV2(edit(v2(), field, text)), 'invalid_payload', field);
    });
  }

  it.each(numbers)('refuses accepted.amount = %j', (text) => {
    expectMalformed(decodeV2(edit(v2(), 'accepted.amount', text)), 'invalid_payload', 'accepted.amount');
  });

  it.each([
    ['a JSON number', 10000],
    ['2^256', (2n ** 256n).toString()],
    ['79 digits', '1'.repeat(79)],
    ['null', null],
  ])('refuses value as %s', (_name, value) => {
    expectMalformed(decodeV2(edit(v2(), 'payload.authorization.value', value)), 'invalid_payload', 'value');
  });

  const addresses = [
    ['short', '0x857b06519E91e3A54538791bDbb0E22373e36b6'],
    ['long', '0x857b06519E91e3A54538791bDbb0E22373e36b660'],
    ['no 0x', '857b06519E91e3A54538791bDbb0E22373e36b66'],
    ['0X prefix', '0X857b06519E91e3A54538791bDbb0E22373e36b66'],
    ['non-hex', '0x857b06519E91e3A54538791bDbb0E22373e36bzz'],
    ['padded', ' 0x857b06519E91e3A54538791bDbb0E22373e36b66'],
    ['empty', ''],
  ] as const;

  for (const field of ['payload.authorization.from', 'payload.authorization.to', 'accepted.asset', 'accepted.payTo']) {
    it.each(addresses)(`refuses ${field} %s`, (_name, value) => {
      expectMalformed(decodeV2(edit(v2(), field, value)), 'invalid_payload', field);
    });
  }

  it.each([
    ['short', `0x${'1f'.repeat(31)}`],
    ['one digit short', `0x${'1'.repeat(63)}`],
    ['long', `0x${'1f'.repeat(33)}`],
    ['no 0x', '1f'.repeat(32)],
    ['non-hex', `0x${'zz'.repeat(32)}`],
    ['a number', 1],
  ])('refuses nonce %s', (_name, value) => {
    expectMalformed(decodeV1(edit(v1(), 'payload.authorization.nonce', value)), 'invalid_payload', 'nonce');
    expectMalformed(decodeV2(edit(v2(), 'payload.authorization.nonce', value)), 'invalid_payload', 'nonce');
  });

  it.each([
    ['64 bytes', `0x${'ab'.repeat(64)}`],
    ['odd length', `0x${'ab'.repeat(65)}a`],
    ['non-hex', `0x${'zz'.repeat(65)}`],
    ['no 0x', 'ab'.repeat(66)],
    ['empty', ''],
    ['over the limit', `0x${'11'.repeat(MAX_SIGNATURE_BYTES + 1)}`],
  ])('refuses signature %s', (_name, value) => {
    expectMalformed(decodeV2(edit(v2(), 'payload.signature', value)), 'invalid_payload', 'signature');
  });

  it.each([
    ['v1 scheme', 'scheme'],
    ['v1 network', 'network'],
    ['v1 payload', 'payload'],
    ['v1 signature', 'payload.signature'],
    ['v1 authorization', 'payload.authorization'],
    ['v1 from', 'payload.authorization.from'],
    ['v1 to', 'payload.authorization.to'],
    ['v1 value', 'payload.authorization.value'],
    ['v1 validAfter', 'payload.authorization.validAfter'],
    ['v1 validBefore', 'payload.authorization.validBefore'],
    ['v1 nonce', 'payload.authorization.nonce'],
  ])('refuses a missing %s', (_name, path) => {
    expectMalformed(decodeV1(edit(v1(), path, undefined)), 'invalid_payload', path);
  });

  it.each([
    'accepted',
    'payload',
    'payload.signature',
    'payload.authorization',
    'payload.authorization.nonce',
    'accepted.network',
    'accepted.amount',
    'accepted.asset',
    'accepted.payTo',
    'accepted.maxTimeoutSeconds',
  ])('refuses a v2 payload without %s', (path) => {
    expectMalformed(decodeV2(edit(v2(), path, undefined)), 'invalid_payload', path);
  });

  it.each([
    ['v1 top level', 'resource'],
    ['v1 payload', 'payload.transaction'],
    ['v1 authorization', 'payload.authorization.chainId'],
  ])('refuses an extra field at %s', (_name, path) => {
    expectMalformed(decodeV1(edit(v1(), path, 'x')), 'invalid_payload', 'Unrecognized key');
  });

  it.each([
    ['top level', 'scheme'],
    ['top level', 'network'],
    ['payload', 'payload.permit2Authorization'],
    ['authorization', 'payload.authorization.extra'],
    ['accepted', 'accepted.maxAmountRequired'],
    ['accepted', 'accepted.description'],
  ])('refuses a v2 extra field at %s (%s)', (_name, path) => {
    expectMalformed(decodeV2(edit(v2(), path, 'x')), 'invalid_payload', 'Unrecognized key');
  });

  it('refuses a __proto__ key rather than letting it through', () => {
    const text = JSON.stringify(v1()).replace('{"x402Version":1', '{"x402Version":1,"__proto__":{"polluted":true}');
    expectMalformed(decodePaymentHeader({ xPayment: Buffer.from(text).toString('base64') }), 'invalid_payload', '__proto__');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it.each([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['a string', '300'],
  ])('refuses accepted.maxTimeoutSeconds %s', (_name, value) => {
    expectMalformed(decodeV2(edit(v2(), 'accepted.maxTimeoutSeconds', value)), 'invalid_payload', 'maxTimeoutSeconds');
  });

  it.each([
    ['resource as a string', 'resource', 'https://x'],
    ['extensions as an array', 'extensions', []],
    ['accepted.extra as a string', 'accepted.extra', 'USD Coin'],
  ])('refuses %s', (_name, path, value) => {
    expectMalformed(decodeV2(edit(v2(), path, value)), 'invalid_payload', path);
  });

  it.each([
    ['empty', ''],
    ['with a space', 'base sepolia'],
    ['with markup', '<script>'],
    ['too long', 'x'.repeat(65)],
    ['a number', 8453],
  ])('refuses network %s', (_name, value) => {
    expectMalformed(decodeV1(edit(v1(), 'network', value)), 'invalid_payload', 'network');
    expectMalformed(decodeV2(edit(v2(), 'accepted.network', value)), 'invalid_payload', 'network');
  });

  it('bounds the message even when an attacker picks a huge key', () => {
    const outcome = decodeV2(edit(v2(), `k${'x'.repeat(5000)}`, 1));
    expectMalformed(outcome, 'invalid_payload');
    if (outcome.kind === 'malformed') expect(outcome.message.length).toBeLessThanOrEqual(201);
  });
});
