/**
 * The `cdp` block of a facilitator (settle's own and each fallback's): read into the compiled
 * facilitator list, secrets checked at load with their YAML path, and never quoted back.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ed25519CdpKey, p256CdpKey } from '../helpers/cdp-facilitator.js';

const ED = ed25519CdpKey('organizations/o/apiKeys/ed');
const EC = p256CdpKey('organizations/o/apiKeys/ec');

function yaml(settle: string): string {
  return `
payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", settle: ${settle} }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`;
}

const CDP = `cdp: { apiKeyId: "\${CDP_API_KEY_ID}", apiKeySecret: "\${CDP_API_KEY_SECRET}" }`;
const CDP_SETTLE = yaml(`{ mode: facilitator, url: "https://api.cdp.coinbase.com/platform/v2/x402", ${CDP} }`);

function parse(text: string, env: Record<string, string>) {
  return parseConfigText(text, env);
}

function problems(text: string, env: Record<string, string>): readonly string[] {
  const r = parse(text, env);
  return r.ok ? [] : r.problems;
}

describe('settle.cdp', () => {
  it('reads an Ed25519 or a PEM EC key from the environment into the facilitator list; verify goes through it too', () => {
    for (const key of [ED, EC]) {
      const r = parse(CDP_SETTLE, { CDP_API_KEY_ID: key.id, CDP_API_KEY_SECRET: key.secret });
      if (!r.ok) throw new Error(r.problems.join('\n'));
      const base = r.config.networks.get('base');
      expect(base?.verify).toBe('facilitator');
      expect(base?.settle.mode === 'facilitator' && base.settle.facilitators).toEqual([
        { url: 'https://api.cdp.coinbase.com/platform/v2/x402', headers: {}, timeoutMs: 10_000, cdp: { apiKeyId: key.id, apiKeySecret: key.secret } },
      ]);
    }
  });

  it('leaves a facilitator without cdp as it was (no cdp key at all)', () => {
    const r = parse(yaml(`{ mode: facilitator, url: "https://x402.org/facilitator" }`), {});
    expect(r.ok && r.config.networks.get('base')?.settle).toEqual({
      mode: 'facilitator',
      facilitators: [{ url: 'https://x402.org/facilitator', headers: {}, timeoutMs: 10_000 }],
    });
  });

  it('refuses a secret that is no CDP key, with its YAML path, without quoting it', () => {
    const bad = Buffer.from(ED.secret, 'base64').subarray(0, 48).toString('base64');
    const found = problems(CDP_SETTLE, { CDP_API_KEY_ID: ED.id, CDP_API_KEY_SECRET: bad });
    expect(found).toEqual([
      'networks.base.settle.cdp.apiKeySecret: decodes to 48 bytes; a base64 Ed25519 secret is 64 (32-byte seed + 32-byte public key), as in CDP\'s key file',
    ]);
    expect(found.join('\n')).not.toContain(bad.slice(0, 16));
  });

  it('says which variable is missing, and that the field is empty', () => {
    expect(problems(CDP_SETTLE, { CDP_API_KEY_ID: ED.id })).toEqual([
      'networks.base.settle.cdp.apiKeySecret: environment variable CDP_API_KEY_SECRET is not set',
      'networks.base.settle.cdp.apiKeySecret: must not be empty',
    ]);
  });

  it('needs both keys, and no others', () => {
    expect(problems(yaml(`{ mode: facilitator, url: "https://a.example", cdp: { apiKeyId: "k" } }`), {})).toEqual([
      'networks.base.settle.cdp.apiKeySecret: Invalid input: expected string, received undefined',
    ]);
    expect(problems(yaml(`{ mode: facilitator, url: "https://a.example", cdp: { apiKeyId: "k", apiKeySecret: "${ED.secret}", walletSecret: "x" } }`), {})).toEqual([
      'networks.base.settle.cdp: unknown key "walletSecret"',
    ]);
  });

  it('refuses an Authorization header beside cdp (it would be sent next to the JWT)', () => {
    const text = yaml(`{ mode: facilitator, url: "https://a.example", headers: { Authorization: "Bearer x" }, ${CDP} }`);
    expect(problems(text, { CDP_API_KEY_ID: ED.id, CDP_API_KEY_SECRET: ED.secret })).toEqual([
      "networks.base.settle.headers.Authorization: cdp signs every call's Authorization header; remove this one",
    ]);
  });
});

describe('settle.fallbacks[].cdp', () => {
  it('takes a key of its own on each fallback, checked with the fallback\'s path', () => {
    const text = yaml(`{ mode: facilitator, url: "https://x402.org/facilitator", fallbacks: [
      { url: "https://api.cdp.coinbase.com/platform/v2/x402", cdp: { apiKeyId: "${EC.id}", apiKeySecret: "\${EC_SECRET}" } },
      { url: "https://b.example", cdp: { apiKeyId: "k2", apiKeySecret: "\${BAD}" } } ] }`);
    expect(problems(text, { EC_SECRET: EC.secret, BAD: 'AAAA' })).toEqual([
      'networks.base.settle.fallbacks[1].cdp.apiKeySecret: decodes to 3 bytes; a base64 Ed25519 secret is 64 (32-byte seed + 32-byte public key), as in CDP\'s key file',
    ]);
    const r = parse(text, { EC_SECRET: EC.secret, BAD: ED.secret });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const settle = r.config.networks.get('base')?.settle;
    expect(settle?.mode === 'facilitator' && settle.facilitators.map((f) => f.cdp?.apiKeyId)).toEqual([undefined, EC.id, 'k2']);
  });
});
