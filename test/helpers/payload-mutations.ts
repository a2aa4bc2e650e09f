/**
 * Structure-aware mutations of an x402 payment payload, and of its header encoding, for the
 * property tests in test/fuzz/: delete, replace or add a field anywhere in the JSON tree, bend
 * its case or its edges, with values that sit next to valid ones; then encode it as a client
 * would, or with the base64 or JSON bent.
 */
import fc from 'fast-check';
import { MAX_SIGNATURE_BYTES } from '../../src/protocol/decode-payment.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export const anyJson: fc.Arbitrary<Json> = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<Json>;

/** Values a strict decoder must not mistake for a valid one (each is the neighbour of a valid value). */
export const trickyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    '', ' ', ' 1', '1 ', '01', '00', '-1', '+1', '1.0', '1e6', '0x10', '0b1', '0o7', '١٢', '１', 'NaN', 'Infinity', '1_000', '10000n',
    (2n ** 256n).toString(), (2n ** 256n - 1n).toString(), '9'.repeat(78), '9'.repeat(79), '0x', '0x0', `0x${'a'.repeat(39)}`, `0x${'a'.repeat(41)}`,
    `0X${'a'.repeat(40)}`, `0x${'g'.repeat(40)}`, `0x${'a'.repeat(63)}`, `0x${'a'.repeat(65)}`, `0x${'ab'.repeat(64)}`, `0x${'a'.repeat(131)}`,
    `0x${'ab'.repeat(MAX_SIGNATURE_BYTES + 1)}`, 'exact ', 'EXACT', 'upto', 'eip155:8453 ', 'base\u0000', 'a'.repeat(65), '__proto__',
    0, 1, 2, 3, -1, 1.5, 1e21, -0, 10000, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, true, false, null, [], {}, [1], { '': null },
  ),
  anyJson,
);

/** One edit of a JSON tree; `at` picks the value it applies to (modulo the number of values). */
export type Mutation =
  | { readonly op: 'delete'; readonly at: number }
  | { readonly op: 'set'; readonly at: number; readonly value: Json }
  | { readonly op: 'addKey'; readonly at: number; readonly key: string; readonly value: Json }
  | { readonly op: 'case'; readonly at: number; readonly upper: boolean }
  | { readonly op: 'edge'; readonly at: number; readonly prefix: string; readonly suffix: string };

/** Any one mutation. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: trickyValue }),
  fc.record({ op: fc.constant('addKey' as const), at: fc.nat(), key: fc.oneof(fc.constantFrom('x402Version', 'scheme', 'network', 'accepted', 'payload', 'extra', 'resource', '__proto__', 'constructor', 'value'), fc.string({ maxLength: 6 })), value: trickyValue }),
  fc.record({ op: fc.constant('case' as const), at: fc.nat(), upper: fc.boolean() }),
  fc.record({ op: fc.constant('edge' as const), at: fc.nat(), prefix: fc.constantFrom('', ' ', '0', '\u200b', '\n'), suffix: fc.constantFrom('', ' ', '0', '00', '\u0000', '\ufeff') }),
);

/** Paths of every value in a JSON tree (not the root), parents first. */
export function pathsOf(value: Json, prefix: readonly (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...pathsOf(v, [...prefix, i])]);
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
  return [];
}

/** `doc` with one mutation applied at one of its paths (`at` modulo their number); `doc` is a copy already. */
export function mutate(doc: JsonObject, m: Mutation): void {
  const paths = pathsOf(doc);
  const path = paths[m.at % Math.max(1, paths.length)] ?? [];
  const parentPath = path.slice(0, -1);
  const last = path.at(-1);
  let parent: Json = doc;
  for (const key of parentPath) parent = (parent as Record<string | number, Json>)[key] ?? null;
  if (parent === null || typeof parent !== 'object' || last === undefined) return;
  const container = parent as Record<string | number, Json>;
  const current = container[last];
  switch (m.op) {
    case 'delete':
      if (Array.isArray(container)) container.splice(Number(last), 1);
      else delete container[last];
      return;
    case 'set':
      container[last] = m.value;
      return;
    case 'addKey': {
      const isObject = (v: Json | undefined): v is { [key: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);
      // Keys go on objects only, as in JSON (an array with an own `constructor` breaks Array methods).
      const target = isObject(current) ? current : isObject(container as Json) ? (container as { [key: string]: Json }) : undefined;
      if (target === undefined) return;
      // Defined as a property, as JSON.parse would: `__proto__` must stay a key, not a prototype.
      Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      return;
    }
    case 'case':
      if (typeof current === 'string') container[last] = m.upper ? current.toUpperCase() : current.toLowerCase();
      return;
    case 'edge':
      if (typeof current === 'string') container[last] = m.prefix + current + m.suffix;
      else if (typeof current === 'number') container[last] = `${m.prefix}${current}${m.suffix}`;
      return;
  }
}

/** How mutated JSON becomes header text: as a client encodes it, or with the encoding itself bent. */
export type Encoding =
  | { readonly kind: 'standard' }
  | { readonly kind: 'spaced' }
  | { readonly kind: 'bom' }
  | { readonly kind: 'duplicateKey'; readonly key: string }
  | { readonly kind: 'latin1' }
  | { readonly kind: 'text'; readonly op: 'unpad' | 'urlsafe' | 'newline' | 'flip' | 'extraPad' | 'truncate'; readonly at: number };

/** Any encoding, the standard one most often. */
export const encoding: fc.Arbitrary<Encoding> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'standard' as const }) },
  fc.constant({ kind: 'spaced' as const }),
  fc.constant({ kind: 'bom' as const }),
  fc.constant({ kind: 'latin1' as const }),
  fc.record({ kind: fc.constant('duplicateKey' as const), key: fc.constantFrom('x402Version', 'network', 'scheme', 'payload', 'accepted') }),
  fc.record({ kind: fc.constant('text' as const), op: fc.constantFrom('unpad', 'urlsafe', 'newline', 'flip', 'extraPad', 'truncate'), at: fc.nat() }),
);

/** The header text of `doc` under encoding `e`. */
export function encodeMutated(doc: JsonObject, e: Encoding): string {
  const json = JSON.stringify(doc);
  const b64 = (text: string, enc: BufferEncoding = 'utf8') => Buffer.from(text, enc).toString('base64');
  switch (e.kind) {
    case 'standard':
      return b64(json);
    case 'spaced':
      return b64(JSON.stringify(doc, null, 2));
    case 'bom':
      return b64(`\ufeff${json}`);
    case 'latin1':
      return b64(json, 'latin1');
    case 'duplicateKey':
      // A second `key` at the end: JSON.parse keeps the last, a different parser the first.
      return b64(`${json.slice(0, -1)}${json.length > 2 ? ',' : ''}"${e.key}":${JSON.stringify(doc[e.key] ?? 2)}}`);
    case 'text': {
      const text = b64(json);
      const i = e.at % text.length;
      switch (e.op) {
        case 'unpad':
          return text.replace(/=+$/, '');
        case 'urlsafe':
          return text.replaceAll('+', '-').replaceAll('/', '_');
        case 'newline':
          return `${text.slice(0, i)}\n${text.slice(i)}`;
        case 'flip': {
          const c = text[i] ?? 'A';
          const other = BASE64_ALPHABET[(BASE64_ALPHABET.indexOf(c) + 1) % 64] ?? 'A';
          return text.slice(0, i) + other + text.slice(i + 1);
        }
        case 'extraPad':
          return `${text}=`;
        case 'truncate':
          return text.slice(0, i);
      }
    }
  }
}
