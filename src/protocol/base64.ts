/**
 * Standard base64 (RFC 4648 §4, with `=` padding) around UTF-8 JSON objects: the encoding of
 * every x402 header. Decoding takes untrusted header text and never throws.
 *
 * Node's `Buffer.from(text, 'base64')` is lenient: it skips whitespace and unknown characters,
 * accepts the URL-safe alphabet and missing padding, and ignores non-zero padding bits. One
 * header could then have many spellings, so the decoder checks the alphabet and length itself
 * and requires the text to be the canonical encoding of the bytes it decodes to.
 */
import { GATEWAY_REASON } from './reasons.js';

/**
 * Longest header text accepted, in characters (base64 is ASCII, so also bytes). Node's default
 * limit for all request headers together is 16 KiB; a real payment header is under 2 KiB.
 */
export const MAX_BASE64_JSON_LENGTH = 16 * 1024;

/** Why a header did not decode; stable snake_case, safe to log and to show the caller. */
export type Base64JsonFailure =
  | typeof GATEWAY_REASON.headerTooLarge
  | typeof GATEWAY_REASON.invalidBase64
  | typeof GATEWAY_REASON.invalidUtf8
  | typeof GATEWAY_REASON.invalidJson
  | typeof GATEWAY_REASON.notAJsonObject;

export type Base64JsonResult =
  | { readonly ok: true; readonly value: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: Base64JsonFailure; readonly message: string };

const STANDARD_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE_CHARS = /[-_]/;
const WHITESPACE = /\s/;

// fatal: invalid UTF-8 throws instead of becoming U+FFFD. ignoreBOM: a BOM stays in the text,
// so JSON.parse refuses it rather than the decoder silently dropping it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const fail = (reason: Base64JsonFailure, message: string): Base64JsonResult => ({ ok: false, reason, message });

/** Decodes standard base64 of a UTF-8 JSON object; every other input is a failure, never a throw. */
export function decodeBase64Json(text: string, maxLength: number = MAX_BASE64_JSON_LENGTH): Base64JsonResult {
  if (text.length > maxLength) {
    return fail(GATEWAY_REASON.headerTooLarge, `header is ${text.length} characters, the limit is ${maxLength}`);
  }
  if (text.length === 0) return fail(GATEWAY_REASON.invalidBase64, 'header is empty');
  if (!STANDARD_ALPHABET.test(text)) {
    if (WHITESPACE.test(text)) return fail(GATEWAY_REASON.invalidBase64, 'base64 must not contain whitespace');
    if (URL_SAFE_CHARS.test(text)) return fail(GATEWAY_REASON.invalidBase64, 'base64 must use the standard alphabet, not the URL-safe one');
    return fail(GATEWAY_REASON.invalidBase64, 'base64 contains characters outside the standard alphabet or misplaced padding');
  }
  if (text.length % 4 !== 0) return fail(GATEWAY_REASON.invalidBase64, 'base64 length must be a multiple of 4 (padding with "=" is required)');

  const bytes = Buffer.from(text, 'base64');
  // Canonical form: re-encoding gives the same text back, which rules out non-zero padding bits.
  if (bytes.toString('base64') !== text) return fail(GATEWAY_REASON.invalidBase64, 'base64 is not in canonical form');

  let json: string;
  try {
    json = utf8.decode(bytes);
  } catch {
    return fail(GATEWAY_REASON.invalidUtf8, 'decoded bytes are not valid UTF-8');
  }

  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return fail(GATEWAY_REASON.invalidJson, 'decoded text is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(GATEWAY_REASON.notAJsonObject, 'decoded JSON is not an object');
  }
  // Narrowed above to a non-null, non-array object: a JSON object's keys are all strings.
  return { ok: true, value: value as Readonly<Record<string, unknown>> };
}

/** Standard base64 with padding of the value's UTF-8 JSON. */
export function encodeBase64Json(value: object): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}
