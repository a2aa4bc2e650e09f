/**
 * Property tests of the payment header decoder (`PAYMENT-SIGNATURE`, `X-PAYMENT`): arbitrary
 * text, base64 of arbitrary bytes and JSON, structure-aware mutations of payloads the official
 * clients signed, and generated valid payloads. The decoder never throws; it answers `none`,
 * `ok` or `malformed` with one of its stable reasons; whatever it accepts has exactly the wire
 * shape (checked here by an oracle written apart from the zod schemas); and a valid payload
 * round-trips. Pure calls, no sockets.
 */
import { ExactEvmScheme } from '@x402/evm/exact/client';
import type { PaymentRequirements } from '@x402/core/types';
import fc from 'fast-check';
import { getAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { createPaymentHeader } from 'x402/client';
import { PaymentRequirementsSchema } from 'x402/types';
import { decodeBase64Json, encodeBase64Json, MAX_BASE64_JSON_LENGTH } from '../../src/protocol/base64.js';
import { decodePaymentHeader, MAX_SIGNATURE_BYTES, MIN_SIGNATURE_BYTES, type DecodeOutcome, type PaymentHeaders } from '../../src/protocol/decode-payment.js';
import { requirementV1, requirementV2 } from '../../src/protocol/challenge.js';
import { GATEWAY_REASON, REASON_CATALOGUE } from '../../src/protocol/reasons.js';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import { fuzzParams, fuzzTimeoutMs } from '../helpers/fuzz-params.js';
import { anyJson, BASE64_ALPHABET, encodeMutated, encoding, mutate, mutation, type Json, type JsonObject } from '../helpers/payload-mutations.js';
import { makeOption, makeRoute } from '../helpers/options.js';

/** Each property's time budget, grown with FUZZ_RUNS. */
const FUZZ_TIMEOUT_MS = fuzzTimeoutMs(60_000);

// A throwaway dev key; signing needs no chain.
const account = privateKeyToAccount(ANVIL_DEV_KEYS[1]);
const RESOURCE = 'https://gw.example.com/v1/weather?city=Paris';

/** The reasons `decodePaymentHeader` documents for a refusal (`MalformedReason`). */
const MALFORMED_REASONS: ReadonlySet<string> = new Set([
  GATEWAY_REASON.headerTooLarge,
  GATEWAY_REASON.invalidBase64,
  GATEWAY_REASON.invalidUtf8,
  GATEWAY_REASON.invalidJson,
  GATEWAY_REASON.notAJsonObject,
  GATEWAY_REASON.invalidX402Version,
  GATEWAY_REASON.unsupportedScheme,
  GATEWAY_REASON.invalidPayload,
]);

// --- the oracle: what an accepted header must look like, written apart from decode-payment.ts ---

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const hasExactly = (v: Record<string, unknown>, required: readonly string[], optional: readonly string[] = []): boolean =>
  required.every((k) => k in v) && Object.keys(v).every((k) => required.includes(k) || optional.includes(k));
const isUint256 = (v: unknown): v is string => typeof v === 'string' && /^(0|[1-9][0-9]*)$/.test(v) && BigInt(v) < 2n ** 256n;
const isAddress = (v: unknown): v is string => typeof v === 'string' && /^0x[0-9a-fA-F]{40}$/.test(v);
const isBytes32 = (v: unknown): v is string => typeof v === 'string' && /^0x[0-9a-fA-F]{64}$/.test(v);
const isSignature = (v: unknown): v is string =>
  typeof v === 'string' && /^0x([0-9a-fA-F]{2})+$/.test(v) && v.length >= 2 + 2 * MIN_SIGNATURE_BYTES && v.length <= 2 + 2 * MAX_SIGNATURE_BYTES;
const isNetwork = (v: unknown): v is string => typeof v === 'string' && /^[-_:a-zA-Z0-9]{1,64}$/.test(v);
const isOpaque = (v: unknown): boolean => v === undefined || v === null || isRecord(v);

function isWirePayload(v: unknown): boolean {
  if (!isRecord(v) || !hasExactly(v, ['signature', 'authorization']) || !isSignature(v['signature'])) return false;
  const a = v['authorization'];
  return (
    isRecord(a) &&
    hasExactly(a, ['from', 'to', 'value', 'validAfter', 'validBefore', 'nonce']) &&
    isAddress(a['from']) &&
    isAddress(a['to']) &&
    isUint256(a['value']) &&
    isUint256(a['validAfter']) &&
    isUint256(a['validBefore']) &&
    isBytes32(a['nonce'])
  );
}

/** True when `raw` is a payment the gateway should accept, by the wire format alone. */
function isWirePayment(raw: Record<string, unknown>): boolean {
  if (raw['x402Version'] === 1) {
    return hasExactly(raw, ['x402Version', 'scheme', 'network', 'payload']) && raw['scheme'] === 'exact' && isNetwork(raw['network']) && isWirePayload(raw['payload']);
  }
  if (raw['x402Version'] !== 2 || !hasExactly(raw, ['x402Version', 'accepted', 'payload'], ['resource', 'extensions'])) return false;
  const acc = raw['accepted'];
  return (
    isOpaque(raw['resource']) &&
    isOpaque(raw['extensions']) &&
    isRecord(acc) &&
    hasExactly(acc, ['scheme', 'network', 'amount', 'asset', 'payTo', 'maxTimeoutSeconds'], ['extra']) &&
    acc['scheme'] === 'exact' &&
    isNetwork(acc['network']) &&
    isUint256(acc['amount']) &&
    isAddress(acc['asset']) &&
    isAddress(acc['payTo']) &&
    Number.isSafeInteger(acc['maxTimeoutSeconds']) &&
    (acc['maxTimeoutSeconds'] as number) > 0 &&
    isOpaque(acc['extra']) &&
    isWirePayload(raw['payload'])
  );
}

/**
 * Everything a decode outcome must be, whatever the input: a documented kind; `none` exactly when
 * no header was given; a refusal with a stable, catalogued reason and a bounded message; and an
 * acceptance that is exactly what the header said, normalised (bigint numbers, checksummed
 * addresses, lower-case hex), of a header that is canonical base64 of a well-formed payment.
 */
function checkOutcome(headers: PaymentHeaders, outcome: DecodeOutcome): void {
  const text = headers.paymentSignature ?? headers.xPayment;
  switch (outcome.kind) {
    case 'none':
      expect(text).toBeUndefined();
      return;
    case 'malformed':
      expect(text).toBeDefined();
      expect(MALFORMED_REASONS.has(outcome.reason), outcome.reason).toBe(true);
      expect(REASON_CATALOGUE[outcome.reason], outcome.reason).toBeDefined();
      expect(typeof outcome.message).toBe('string');
      expect(outcome.message.length).toBeLessThanOrEqual(201);
      return;
    case 'ok': {
      if (text === undefined) throw new Error('ok without a header');
      const { payment } = outcome;
      expect(payment.header).toBe(headers.paymentSignature !== undefined ? 'payment-signature' : 'x-payment');
      expect(text.length).toBeLessThanOrEqual(MAX_BASE64_JSON_LENGTH);
      expect(Buffer.from(text, 'base64').toString('base64')).toBe(text);
      const raw = payment.raw as Record<string, unknown>;
      expect(JSON.parse(Buffer.from(text, 'base64').toString('utf8'))).toEqual(raw);
      expect(isWirePayment(raw), JSON.stringify(raw)).toBe(true);
      expect(payment.x402Version).toBe(raw['x402Version']);
      expect(payment.scheme).toBe('exact');
      const wire = raw['payload'] as { signature: string; authorization: Record<string, string> };
      const a = payment.payload.authorization;
      expect(payment.payload.signature).toBe(wire.signature.toLowerCase());
      expect(a.from).toBe(getAddress(wire.authorization['from'] ?? ''));
      expect(a.to).toBe(getAddress(wire.authorization['to'] ?? ''));
      expect(a.value).toBe(BigInt(wire.authorization['value'] ?? ''));
      expect(a.validAfter).toBe(BigInt(wire.authorization['validAfter'] ?? ''));
      expect(a.validBefore).toBe(BigInt(wire.authorization['validBefore'] ?? ''));
      expect(a.nonce).toBe((wire.authorization['nonce'] ?? '').toLowerCase());
      if (payment.x402Version === 1) {
        expect(payment.accepted).toBeUndefined();
        expect(payment.network).toBe(raw['network']);
      } else {
        const acc = raw['accepted'] as Record<string, unknown>;
        // An own `__proto__` key of `extra` is dropped (zod's records never copy it, so it cannot
        // become the prototype of the object the gateway reads); `raw` keeps it as it came.
        const extra = Object.fromEntries(Object.entries((acc['extra'] ?? {}) as Record<string, unknown>).filter(([k]) => k !== '__proto__'));
        expect(payment.accepted).toEqual({ ...acc, extra });
        expect(Object.getPrototypeOf(payment.accepted?.extra)).toBe(Object.prototype);
        expect(payment.network).toBe(acc['network']);
      }
      return;
    }
    default:
      throw new Error(`undocumented outcome ${JSON.stringify(outcome)}`);
  }
}

/** Decodes and checks; the decoder must also be a function of its input (same answer twice). */
function decodeAndCheck(headers: PaymentHeaders): DecodeOutcome {
  const outcome = decodePaymentHeader(headers);
  checkOutcome(headers, outcome);
  expect(decodePaymentHeader(headers)).toEqual(outcome);
  return outcome;
}

// --- generators ---

/** Text of every kind a header could carry: any code points, base64-ish, near the size limit. */
const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(...`${BASE64_ALPHABET}=-_ \t\n\r%.`), maxLength: 400 }),
  fc.base64String({ maxLength: 400 }),
  fc.constantFrom('', '=', '==', '===', 'AA==', 'AAA=', 'AAAA', 'e30=', 'bnVsbA==', 'W10=', 'MQ==', '77u/e30=', 'e30', 'e30=\n', ' e30=', 'e30=='),
  fc.integer({ min: MAX_BASE64_JSON_LENGTH - 4, max: MAX_BASE64_JSON_LENGTH + 8 }).map((n) => 'A'.repeat(n)),
);

const headersOf = (text: fc.Arbitrary<string>): fc.Arbitrary<PaymentHeaders> =>
  fc.record({ paymentSignature: fc.option(text, { nil: undefined }), xPayment: fc.option(text, { nil: undefined }) });

const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex'));
/** Hex digits in any mix of cases: the decoder must accept and normalise all of them. */
const anyCase = (text: fc.Arbitrary<string>) =>
  fc
    .tuple(text, fc.uint8Array({ minLength: 1, maxLength: 64 }))
    .map(([t, mask]) => t.replace(/[a-f]/g, (c, i: number) => (((mask[i % mask.length] ?? 0) >> i % 8) & 1 ? c.toUpperCase() : c)));
const address = anyCase(hex(20)).map((h) => `0x${h}`);
const bytes32 = anyCase(hex(32)).map((h) => `0x${h}`);
const signature = fc
  .oneof({ weight: 9, arbitrary: fc.integer({ min: MIN_SIGNATURE_BYTES, max: 200 }) }, fc.integer({ min: MIN_SIGNATURE_BYTES, max: MAX_SIGNATURE_BYTES }))
  .chain((n) => anyCase(hex(n)))
  .map((h) => `0x${h}`);
const uint256 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n }), fc.constantFrom(0n, 2n ** 256n - 1n)).map(String);
const network = fc.oneof(fc.constantFrom('base', 'base-sepolia', 'eip155:8453', 'eip155:84532'), fc.stringMatching(/^[-_:a-zA-Z0-9]{1,64}$/));
const opaque = fc.option(fc.dictionary(fc.string({ maxLength: 8 }), anyJson, { maxKeys: 3 }), { nil: null });

const wirePayload = fc.record({
  signature,
  authorization: fc.record({ from: address, to: address, value: uint256, validAfter: uint256, validBefore: uint256, nonce: bytes32 }),
});

/** A payment of either version that is valid by the wire format: the decoder must accept it. */
const validPayment: fc.Arbitrary<JsonObject> = fc.oneof(
  fc.record({ x402Version: fc.constant(1), scheme: fc.constant('exact'), network, payload: wirePayload }),
  fc.record(
    {
      x402Version: fc.constant(2),
      accepted: fc.record(
        {
          scheme: fc.constant('exact'),
          network,
          amount: uint256,
          asset: address,
          payTo: address,
          maxTimeoutSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
          extra: opaque,
        },
        { requiredKeys: ['scheme', 'network', 'amount', 'asset', 'payTo', 'maxTimeoutSeconds'] },
      ),
      payload: wirePayload,
      resource: opaque,
      extensions: opaque,
    },
    { requiredKeys: ['x402Version', 'accepted', 'payload'] },
  ),
) as fc.Arbitrary<JsonObject>;

/** Where the header text goes: its own header, the other one, or both (the other holding junk). */
type Placement = 'own' | 'other' | 'both-first' | 'both-second';
const placement = fc.constantFrom<Placement>('own', 'own', 'other', 'both-first', 'both-second');

function place(text: string, version: 1 | 2, where: Placement, junk: string): PaymentHeaders {
  const own = version === 2 ? 'paymentSignature' : 'xPayment';
  const other = version === 2 ? 'xPayment' : 'paymentSignature';
  switch (where) {
    case 'own':
      return { [own]: text };
    case 'other':
      return { [other]: text };
    case 'both-first':
      return { paymentSignature: text, xPayment: junk };
    case 'both-second':
      return { paymentSignature: junk, xPayment: text };
  }
}

// --- payloads the official clients signed ---

const option = makeOption();
const route = makeRoute([option]);

async function officialV2(): Promise<JsonObject> {
  const accepted = requirementV2(option) as PaymentRequirements;
  const result = await new ExactEvmScheme(account).createPaymentPayload(2, accepted);
  return JSON.parse(JSON.stringify({ x402Version: 2, resource: { url: RESOURCE, description: '', mimeType: 'application/json' }, accepted, payload: result.payload })) as JsonObject;
}

async function officialV1(): Promise<JsonObject> {
  const requirement = PaymentRequirementsSchema.parse(requirementV1(option, RESOURCE, route));
  const header = await createPaymentHeader(account, 1, requirement);
  return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as JsonObject;
}

describe('payment header decoder, fuzzed', () => {
  it('any text in either header or both: never throws, always a documented outcome', () => {
    fc.assert(fc.property(headersOf(anyText), (headers) => void decodeAndCheck(headers)), fuzzParams(3000));
  }, FUZZ_TIMEOUT_MS);

  it('base64 of arbitrary bytes: never throws, a documented outcome, only canonical base64 decodes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, v2) => {
        const text = Buffer.from(bytes).toString('base64');
        const outcome = decodeAndCheck(v2 ? { paymentSignature: text } : { xPayment: text });
        if (text === '') expect(outcome).toMatchObject({ kind: 'malformed', reason: GATEWAY_REASON.invalidBase64 });
        else expect(outcome.kind === 'malformed' && outcome.reason === GATEWAY_REASON.invalidBase64).toBe(false);
      }),
      fuzzParams(2000),
    );
  }, FUZZ_TIMEOUT_MS);

  it('base64 of arbitrary JSON: not an object, wrong version and wrong scheme each get their reason', () => {
    const anyVersion = fc.constantFrom<Json>(1, 2, 0, 3, -1, 1.5, '1', '2', true, null, [], {}, 2e0, 1e300);
    const document: fc.Arbitrary<Json> = fc.oneof(
      anyJson,
      fc.tuple(anyVersion, fc.dictionary(
        fc.constantFrom('scheme', 'network', 'payload', 'accepted', 'resource', 'extensions', 'extra', 'x'),
        fc.oneof(anyJson, fc.constantFrom<Json>('exact', 'upto', 'EXACT', { scheme: 'exact' }, { scheme: 'upto' }, { scheme: 1 })),
        { maxKeys: 5 },
      )).map(
        ([x402Version, rest]) => ({ ...rest, x402Version }),
      ),
    );
    fc.assert(
      fc.property(document, fc.boolean(), (doc, v2) => {
        const text = Buffer.from(JSON.stringify(doc), 'utf8').toString('base64');
        const outcome = decodeAndCheck(v2 ? { paymentSignature: text } : { xPayment: text });
        if (!isRecord(doc)) expect(outcome).toMatchObject({ kind: 'malformed', reason: GATEWAY_REASON.notAJsonObject });
        else if (doc['x402Version'] !== 1 && doc['x402Version'] !== 2) expect(outcome).toMatchObject({ kind: 'malformed', reason: GATEWAY_REASON.invalidX402Version });
        else {
          const accepted = doc['accepted'];
          const scheme = doc['x402Version'] === 1 ? doc['scheme'] : isRecord(accepted) ? accepted['scheme'] : undefined;
          if (typeof scheme === 'string' && scheme !== 'exact') expect(outcome).toMatchObject({ kind: 'malformed', reason: GATEWAY_REASON.unsupportedScheme });
          else expect(outcome.kind).not.toBe('none');
        }
      }),
      fuzzParams(3000),
    );
  }, FUZZ_TIMEOUT_MS);

  it('structure-aware mutations of payloads the official v1 and v2 clients signed: a documented outcome, and accepted only when still well-formed', async () => {
    const originals = { 1: await officialV1(), 2: await officialV2() } as const;
    // The untouched originals decode: the mutations start from the real thing.
    expect(decodePaymentHeader({ paymentSignature: encodeBase64Json(originals[2]) }).kind).toBe('ok');
    expect(decodePaymentHeader({ xPayment: encodeBase64Json(originals[1]) }).kind).toBe('ok');
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(
        fc.constantFrom<1 | 2>(1, 2),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        encoding,
        placement,
        anyText,
        (version, mutations, enc, where, junk) => {
          const doc = structuredClone(originals[version]) as JsonObject;
          for (const m of mutations) mutate(doc, m);
          const headers = place(encodeMutated(doc, enc), version, where, junk);
          const outcome = decodeAndCheck(headers);
          const label = outcome.kind === 'malformed' ? outcome.reason : outcome.kind;
          seen.set(label, (seen.get(label) ?? 0) + 1);
          // Nothing but standard, canonical base64 of UTF-8 JSON ever decodes.
          if (enc.kind === 'bom' || enc.kind === 'text') {
            const text = headers.paymentSignature ?? headers.xPayment ?? '';
            if (!(enc.kind === 'text' && decodeBase64Json(text).ok)) expect(outcome.kind).toBe('malformed');
          }
        },
      ),
      fuzzParams(5000),
    );
    if (process.env['FUZZ_STATS'] === '1') console.log('mutations', Object.fromEntries(seen));
    // The mutations reach every stage of the decoder, acceptance included.
    expect([...seen.keys()].sort()).toEqual([...MALFORMED_REASONS, 'ok'].sort());
  }, FUZZ_TIMEOUT_MS);

  it('a valid payload of either version round-trips: accepted, unchanged in raw, fields normalised', () => {
    fc.assert(
      fc.property(validPayment, fc.boolean(), anyText, (doc, both, junk) => {
        const text = encodeBase64Json(doc);
        const headers: PaymentHeaders = both ? { paymentSignature: text, xPayment: junk } : doc['x402Version'] === 2 ? { paymentSignature: text } : { xPayment: text };
        const outcome = decodeAndCheck(headers);
        if (outcome.kind !== 'ok') throw new Error(`refused a valid payload: ${JSON.stringify(outcome)}`);
        // As JSON carries it (`-0` travels as `0`).
        expect(outcome.payment.raw).toEqual(JSON.parse(JSON.stringify(doc)));
        // Encoding what was decoded gives the same payment again.
        const again = decodePaymentHeader(headers.paymentSignature !== undefined ? { paymentSignature: encodeBase64Json(outcome.payment.raw) } : { xPayment: encodeBase64Json(outcome.payment.raw) });
        expect(again).toEqual(outcome);
      }),
      fuzzParams(2000),
    );
  }, FUZZ_TIMEOUT_MS);
});
