/**
 * Who may use the admin listener: the config's refusal of an open listener beyond loopback, and
 * the per-path token rules with their constant-time comparison. Plain calls; the e2e dashboard
 * test checks the same rules through real sockets.
 */
import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/config/compile-admin.js';
import { parseConfigText } from '../../src/config/load.js';
import { bearerToken, requiredToken, tokenMatches } from '../../src/http/admin-auth.js';

const TOKEN = 'a-very-long-admin-token-123';

function yaml(admin: string): string {
  return `
admin: ${admin}
payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
networks:
  base: { network: "eip155:8453", settle: { mode: facilitator, url: "http://127.0.0.1:9" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /x", price: "$0.01", upstream: api }
`;
}
const problems = (admin: string, env: Record<string, string> = {}) => {
  const result = parseConfigText(yaml(admin), env);
  return result.ok ? [] : result.problems;
};

describe('admin config: a listener beyond loopback needs a token', () => {
  it('refuses admin.host 0.0.0.0 without a token, naming admin.token and admin.allowUnauthenticated', () => {
    const found = problems('{ host: 0.0.0.0, port: 9402 }');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^admin\.token: /);
    expect(found[0]).toContain('admin.allowUnauthenticated: true');
    expect(found[0]).toContain('0.0.0.0');
  });

  it('refuses a routable address or host name the same way', () => {
    for (const host of ['10.0.0.5', '::', 'gateway.internal', '[::]']) expect(problems(`{ host: "${host}" }`), host).toHaveLength(1);
  });

  it('accepts loopback without a token (the default host)', () => {
    expect(problems('{}')).toEqual([]);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(problems(`{ host: "${host}" }`), host).toEqual([]);
  });

  it('accepts 0.0.0.0 with a token from the environment, or with allowUnauthenticated: true', () => {
    expect(problems('{ host: 0.0.0.0, token: "${ADMIN_TOKEN}" }', { ADMIN_TOKEN: TOKEN })).toEqual([]);
    expect(problems('{ host: 0.0.0.0, allowUnauthenticated: true }')).toEqual([]);
    const parsed = parseConfigText(yaml('{ host: 0.0.0.0, token: "${ADMIN_TOKEN}" }'), { ADMIN_TOKEN: TOKEN });
    expect(parsed.ok && parsed.config.admin).toEqual({ host: '0.0.0.0', port: 9402, token: TOKEN, metricsToken: undefined, allowUnauthenticated: false });
  });

  it('refuses a token shorter than 16 characters, and a metricsToken equal to the token', () => {
    expect(problems('{ token: "short" }')).toEqual(['admin.token: must be at least 16 characters']);
    expect(problems(`{ token: "${TOKEN}", metricsToken: "${TOKEN}" }`)[0]).toMatch(/^admin\.metricsToken: must differ/);
  });

  it('refuses an unset ${ADMIN_TOKEN} rather than running open', () => {
    expect(problems('{ host: 0.0.0.0, token: "${ADMIN_TOKEN}" }')).not.toEqual([]);
  });

  it('judges loopback by the text of the host', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('localhost.evil.example')).toBe(false);
  });
});

describe('admin token rules', () => {
  const tokens = { token: TOKEN, metricsToken: 'a-metrics-token-0123456' };

  it('leaves the probes open, guards /metrics by metricsToken and everything else by token', () => {
    expect(requiredToken('/healthz', tokens)).toBeUndefined();
    expect(requiredToken('/readyz', tokens)).toBeUndefined();
    expect(requiredToken('/metrics', tokens)).toBe(tokens.metricsToken);
    expect(requiredToken('/metrics', { token: TOKEN, metricsToken: undefined })).toBeUndefined();
    for (const path of ['/dashboard', '/admin/api/summary', '/admin/api/receipts', '/admin/reload', '/nope', '/healthz/']) {
      expect(requiredToken(path, tokens), path).toBe(TOKEN);
    }
  });

  it('reads only a well-formed Bearer header', () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken(`Basic ${TOKEN}`)).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken(`Bearer ${TOKEN} extra`)).toBeUndefined();
  });

  it('compares tokens exactly, whatever their lengths', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN.toUpperCase(), TOKEN)).toBe(false);
  });
});
