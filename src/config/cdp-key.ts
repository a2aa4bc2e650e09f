/**
 * A Coinbase CDP API key secret, read the two ways CDP issues them (and its SDK reads them): a
 * base64 Ed25519 key of 64 bytes (the 32-byte seed, then the 32-byte public key) signing EdDSA,
 * or a PEM EC P-256 private key signing ES256. Checked once at config load, read again by the
 * facilitator client that signs with it (payments/facilitator/cdp-jwt.ts).
 *
 * Pure computation on the secret (node:crypto parses the key; no I/O, no clock), which is why
 * config's compile step may use it. No message here quotes the secret, any part of it, or
 * anything derived from it beyond its length.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/** The JOSE algorithm a key signs with, as CDP's SDK picks it. */
export type CdpKeyAlgorithm = 'EdDSA' | 'ES256';

export interface CdpSigningKey {
  readonly alg: CdpKeyAlgorithm;
  readonly key: KeyObject;
}

export type CdpKeyResult = { readonly ok: true; readonly key: CdpSigningKey } | { readonly ok: false; readonly problem: string };

/** Bytes of an Ed25519 secret as CDP hands it out: seed, then public key. */
export const CDP_ED25519_SECRET_BYTES = 64;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** PKCS#8 DER of an Ed25519 private key up to its 32-byte seed (RFC 8410): SEQUENCE, version 0, OID 1.3.101.112, OCTET STRING. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Reads an API key secret, or says (without quoting it) why it is not one. */
export function readCdpSecret(secret: string): CdpKeyResult {
  const text = secret.trim();
  if (text.startsWith('-----BEGIN')) return readPem(text);
  if (!BASE64.test(text)) {
    return { ok: false, problem: 'is neither a base64 Ed25519 key nor a PEM EC private key ("-----BEGIN EC PRIVATE KEY-----")' };
  }
  return readEd25519(Buffer.from(text, 'base64'));
}

function readEd25519(bytes: Buffer): CdpKeyResult {
  if (bytes.length !== CDP_ED25519_SECRET_BYTES) {
    return {
      ok: false,
      problem: `decodes to ${bytes.length} bytes; a base64 Ed25519 secret is ${CDP_ED25519_SECRET_BYTES} (32-byte seed + 32-byte public key), as in CDP's key file`,
    };
  }
  // From the seed alone (as PKCS#8), so that the check below says what is wrong on every Node:
  // Node 24 refuses a JWK whose public half does not match, Node 20 ignores it.
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, bytes.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
  // CDP verifies with the public key it registered; a second half that is not the seed's public
  // key means a damaged copy (the SDK's jose import refuses it too, on Node 24).
  const derived = createPublicKey(key).export({ format: 'jwk' }).x;
  if (derived !== bytes.subarray(32).toString('base64url')) {
    return { ok: false, problem: 'is damaged: its last 32 bytes are not the public key of its first 32' };
  }
  return { ok: true, key: { alg: 'EdDSA', key } };
}

function readPem(text: string): CdpKeyResult {
  // A PEM pasted into an env file often keeps its newlines as the two characters `\n` (as in
  // CDP's JSON key file); no PEM holds a backslash, so they can only mean newlines.
  const pem = text.includes('\n') ? text : text.replaceAll('\\n', '\n');
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return { ok: false, problem: 'is not a readable PEM private key (an unencrypted "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY")' };
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    return { ok: false, problem: `is a PEM ${key.asymmetricKeyType ?? 'unknown'} key; CDP's PEM secrets are EC P-256 (ES256)` };
  }
  return { ok: true, key: { alg: 'ES256', key } };
}
