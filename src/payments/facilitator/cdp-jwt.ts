/**
 * Coinbase CDP's API authentication: a short-lived JWT per request, made exactly as CDP's own
 * SDK makes them (`generateJwt` in @coinbase/cdp-sdk's auth/utils/jwt.ts, which @coinbase/x402's
 * `createAuthHeader` calls for the facilitator):
 *
 * - header: `alg` EdDSA (base64 Ed25519 secret) or ES256 (PEM EC secret), `kid` the key id,
 *   `typ: "JWT"`, and `nonce`, 16 random bytes in hex;
 * - claims: `sub` the key id, `iss: "cdp"`, `uris: ["METHOD host/path"]`, `iat` and `nbf` now,
 *   `exp` now + 120 s.
 *
 * `uris` binds the token to one call: the method, the URL's host (with its port, when the URL
 * names one) and its path, no query. A token is made for each call and never reused: CDP
 * refuses a nonce it has seen, and a token read from one call cannot be replayed on another.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { CdpSigningKey } from '../../config/cdp-key.js';

/** How long a token is good for, as the SDK's default. */
export const CDP_JWT_LIFETIME_SECONDS = 120;
/** The SDK's nonce: 16 random bytes, hex. */
export const CDP_JWT_NONCE_BYTES = 16;

/** One call a token is made for. */
export interface CdpCall {
  readonly method: string;
  /** The absolute URL the call is sent to. */
  readonly url: string;
}

/** The `uris` entry naming `call`: `POST api.cdp.coinbase.com/platform/v2/x402/verify`. */
export function cdpUri(call: CdpCall): string {
  const url = new URL(call.url);
  return `${call.method.toUpperCase()} ${url.host}${url.pathname}`;
}

export interface CdpJwtInput {
  readonly keyId: string;
  readonly key: CdpSigningKey;
  readonly call: CdpCall;
  /** Unix seconds. */
  readonly nowSeconds: number;
  /** The header's nonce; a fresh random one unless a test fixes it. */
  readonly nonce?: string;
}

/** A signed token for one call. */
export async function cdpJwt(input: CdpJwtInput): Promise<string> {
  const now = Math.floor(input.nowSeconds);
  const nonce = input.nonce ?? randomBytes(CDP_JWT_NONCE_BYTES).toString('hex');
  return new SignJWT({ sub: input.keyId, iss: 'cdp', uris: [cdpUri(input.call)] })
    .setProtectedHeader({ alg: input.key.alg, kid: input.keyId, typ: 'JWT', nonce })
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + CDP_JWT_LIFETIME_SECONDS)
    .sign(input.key.key);
}
