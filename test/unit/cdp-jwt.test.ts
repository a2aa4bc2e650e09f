/**
 * CDP API keys and the JWT made from them, as plain calls: the two secret forms CDP issues are
 * read (and damaged ones refused without being quoted), and each token carries exactly the
 * header and claims CDP's SDK puts in one, signed so that the key's public half verifies it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { readCdpSecret } from '../../src/config/cdp-key.js';
import { CDP_JWT_LIFETIME_SECONDS, cdpJwt, cdpUri } from '../../src/payments/facilitator/cdp-jwt.js';
import { ed25519CdpKey, p256CdpKey, type CdpTestKey } from '../helpers/cdp-facilitator.js';

const NOW = 1_800_000_000;

function signingKey(key: CdpTestKey) {
  const read = readCdpSecret(key.secret);
  if (!read.ok) throw new Error(read.problem);
  return read.key;
}

describe('readCdpSecret', () => {
  it('reads a base64 Ed25519 secret (seed + public key) as EdDSA', () => {
    const read = readCdpSecret(ed25519CdpKey().secret);
    expect(read.ok && read.key.alg).toBe('EdDSA');
  });

  it('reads a PEM P-256 key as ES256, SEC1 or PKCS#8, and with its newlines written as \\n', () => {
    for (const key of [p256CdpKey(undefined, 'sec1'), p256CdpKey(undefined, 'pkcs8')]) {
      const read = readCdpSecret(key.secret);
      expect(read.ok && read.key.alg).toBe('ES256');
      const escaped = readCdpSecret(key.secret.trim().replaceAll('\n', '\\n'));
      expect(escaped.ok && escaped.key.alg).toBe('ES256');
    }
  });

  it('refuses what is not a CDP secret, saying why, and never quotes it', () => {
    const ed = Buffer.from(ed25519CdpKey().secret, 'base64');
    const otherPublic = Buffer.from(ed25519CdpKey().secret, 'base64').subarray(32);
    const rsa = String(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const p384 = String(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'sec1' }));
    const cases: [string, RegExp][] = [
      [ed.subarray(0, 32).toString('base64'), /decodes to 32 bytes; a base64 Ed25519 secret is 64/],
      [Buffer.concat([ed.subarray(0, 32), otherPublic]).toString('base64'), /damaged: its last 32 bytes are not the public key of its first 32/],
      ['not a key at all!', /neither a base64 Ed25519 key nor a PEM EC private key/],
      ['-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n', /not a readable PEM private key/],
      [rsa, /is a PEM rsa key; CDP's PEM secrets are EC P-256/],
      [p384, /is a PEM ec key; CDP's PEM secrets are EC P-256/],
    ];
    for (const [secret, problem] of cases) {
      const read = readCdpSecret(secret);
      expect(read.ok).toBe(false);
      if (read.ok) continue;
      expect(read.problem).toMatch(problem);
      expect(read.problem).not.toContain(secret.trim().slice(0, 12));
    }
  });
});

describe('cdpUri', () => {
  it('names the method, the host with a non-default port, and the path with its prefix; no query', () => {
    expect(cdpUri({ method: 'POST', url: 'https://api.cdp.coinbase.com/platform/v2/x402/verify' })).toBe('POST api.cdp.coinbase.com/platform/v2/x402/verify');
    expect(cdpUri({ method: 'GET', url: 'http://127.0.0.1:8443/platform/v2/x402/supported?key=1' })).toBe('GET 127.0.0.1:8443/platform/v2/x402/supported');
    expect(cdpUri({ method: 'post', url: 'https://api.cdp.coinbase.com:443/platform/v2/x402/settle' })).toBe('POST api.cdp.coinbase.com/platform/v2/x402/settle');
  });
});

describe('cdpJwt', () => {
  for (const [name, make] of [
    ['Ed25519 (EdDSA)', () => ed25519CdpKey('organizations/o/apiKeys/ed')],
    ['P-256 (ES256)', () => p256CdpKey('organizations/o/apiKeys/ec')],
  ] as const) {
    it(`${name}: exactly the SDK's header and claims, verified with the public key`, async () => {
      const key = make();
      const token = await cdpJwt({
        keyId: key.id,
        key: signingKey(key),
        call: { method: 'POST', url: 'http://127.0.0.1:8443/platform/v2/x402/verify' },
        nowSeconds: NOW + 0.7,
        nonce: '00112233445566778899aabbccddeeff',
      });
      expect(decodeProtectedHeader(token)).toEqual({ alg: key.alg, kid: key.id, typ: 'JWT', nonce: '00112233445566778899aabbccddeeff' });
      expect(decodeJwt(token)).toEqual({
        sub: key.id,
        iss: 'cdp',
        uris: ['POST 127.0.0.1:8443/platform/v2/x402/verify'],
        iat: NOW,
        nbf: NOW,
        exp: NOW + CDP_JWT_LIFETIME_SECONDS,
      });
      const { payload } = await jwtVerify(token, key.publicKey, { algorithms: [key.alg], currentDate: new Date((NOW + 60) * 1000) });
      expect(payload.sub).toBe(key.id);
      // Another key's public half does not verify it.
      await expect(jwtVerify(token, make().publicKey, { currentDate: new Date((NOW + 60) * 1000) })).rejects.toThrow(/signature/);
    });
  }

  it('gives every token a fresh random nonce of 16 bytes in hex', async () => {
    const key = ed25519CdpKey();
    const call = { method: 'GET', url: 'https://api.cdp.coinbase.com/platform/v2/x402/supported' };
    const tokens = await Promise.all([1, 2, 3].map(() => cdpJwt({ keyId: key.id, key: signingKey(key), call, nowSeconds: NOW })));
    const nonces = tokens.map((t) => decodeProtectedHeader(t)['nonce']);
    for (const nonce of nonces) expect(nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(nonces).size).toBe(3);
  });
});
