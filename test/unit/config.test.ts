import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expandEnv, parseConfigText } from '../../src/config/load.js';

const MINIMAL = `
payTo: "0x1111111111111111111111111111111111111111"
networks:
  base: { network: "eip155:8453", rpc: "http://127.0.0.1:8545", settle: { mode: local, privateKey: "\${KEY}" } }
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /health", price: free }
`;
const KEY = '0x' + '11'.repeat(32);

function problemsOf(yaml: string, env: Record<string, string> = { KEY }): readonly string[] {
  const r = parseConfigText(yaml, env);
  return r.ok ? [] : r.problems;
}

describe('config', () => {
  it('accepts the example file and fills defaults', () => {
    // Its mainnet network settles with the gateway's own key and RPC, from the environment.
    const r = parseConfigText(readFileSync(new URL('../../gateway.example.yaml', import.meta.url), 'utf8'), { SETTLER_KEY: KEY, BASE_RPC_URL: 'http://127.0.0.1:8545' });
    expect(r.ok && r.config.routes.length).toBe(7);
  });

  it('compiles a minimal file into a frozen, precomputed config', () => {
    const r = parseConfigText(MINIMAL, { KEY });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const c = r.config;
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8402 });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9402, token: undefined, metricsToken: undefined, allowUnauthenticated: false });
    expect(c.unmatched).toBe('deny');
    const weather = c.routes[0];
    expect(weather?.settlement).toBe('after');
    expect(weather?.upstream.name).toBe('api');
    expect(weather?.price.kind === 'priced' && weather.price.options.map((o) => [o.amount, o.asset.id, o.asset.address, o.maxTimeoutSeconds])).toEqual([
      [10_000n, 'usdc@base', '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', 300],
    ]);
    expect(c.networks.get('base')?.v1Name).toBe('base');
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(weather)).toBe(true);
    expect(c.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  // Object.freeze stops a Map gaining properties, not entries: a frozen Map still accepted set().
  it('refuses changes to the compiled Maps, Sets and CIDR lists, not only to its objects', () => {
    const r = parseConfigText(MINIMAL.replace('routes:', 'defaults: { allow: { apiKeySha256: ["' + 'ab'.repeat(32) + '"], cidrs: ["10.0.0.0/8"] } }\nroutes:'), { KEY });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const { networks, assets, upstreams, routes } = r.config;
    const allow = routes[0]?.allow;
    if (!allow) throw new Error('no allowlist');
    // The types say ReadonlyMap; these casts play the part of a caller that ignores them.
    expect(() => (networks as Map<string, unknown>).set('x', {})).toThrow(/read-only/);
    expect(() => (assets as Map<string, unknown>).delete('usdc@base')).toThrow(/read-only/);
    expect(() => (upstreams as Map<string, unknown>).clear()).toThrow(/read-only/);
    expect(() => (allow.apiKeySha256 as Set<string>).add('cd'.repeat(32))).toThrow(/read-only/);
    expect(() => allow.cidrs.addAddress('192.0.2.1')).toThrow(/read-only/);
    expect([networks.size, assets.has('usdc@base'), upstreams.size, allow.apiKeySha256.size]).toEqual([1, true, 1, 1]);
    expect([allow.cidrs.check('10.1.2.3'), allow.cidrs.check('192.0.2.1')]).toEqual([true, false]);
    expect(Object.isFrozen(networks.get('base'))).toBe(true);
  });

  it('turns the X-Payment-Proof flow on only where a route or defaults say so, with a 15-minute default age', () => {
    const off = parseConfigText(MINIMAL, { KEY });
    if (!off.ok) throw new Error(off.problems.join('\n'));
    expect(off.config.routes.map((r) => r.proof)).toEqual([false, false]);
    expect(off.config.networks.get('base')).toMatchObject({ proofConfirmations: 1, proofMaxAgeSeconds: 900 });
    const onRoute = parseConfigText(MINIMAL.replace('price: "$0.01" }', 'price: "$0.01", proof: true }'), { KEY });
    expect(onRoute.ok && onRoute.config.routes.map((r) => r.proof)).toEqual([true, false]);
    const onDefaults = parseConfigText(MINIMAL.replace('routes:', 'defaults: { proof: true }\nroutes:').replace('price: free }', 'price: free, proof: false }'), { KEY });
    expect(onDefaults.ok && onDefaults.config.routes.map((r) => r.proof)).toEqual([true, false]);
    expect(problemsOf(MINIMAL.replace('price: "$0.01" }', 'price: "$0.01", proof: "yes" }'))).toEqual([expect.stringMatching(/^routes\[0\]\.proof: /)]);
  });

  it('caps local settlement gas (settle.maxGas, 150000) and suspends a reverting payer (revertPenaltySeconds, 3600) by default', () => {
    const defaults = parseConfigText(MINIMAL, { KEY });
    if (!defaults.ok) throw new Error(defaults.problems.join('\n'));
    expect(defaults.config.networks.get('base')?.settle).toMatchObject({ mode: 'local', maxGas: 150_000, revertPenaltySeconds: 3_600 });
    const set = parseConfigText(MINIMAL.replace('privateKey: "${KEY}"', 'privateKey: "${KEY}", maxGas: 400000, revertPenaltySeconds: 0'), { KEY });
    expect(set.ok && set.config.networks.get('base')?.settle).toMatchObject({ maxGas: 400_000, revertPenaltySeconds: 0 });
    expect(problemsOf(MINIMAL.replace('privateKey: "${KEY}"', 'privateKey: "${KEY}", maxGas: 21000'))).toEqual([expect.stringMatching(/^networks\.base\.settle\.maxGas: /)]);
    expect(problemsOf(MINIMAL.replace('privateKey: "${KEY}"', 'privateKey: "${KEY}", maxGas: 150000.5'))).toEqual([expect.stringMatching(/^networks\.base\.settle\.maxGas: /)]);
    expect(problemsOf(MINIMAL.replace('privateKey: "${KEY}"', 'privateKey: "${KEY}", revertPenaltySeconds: -1'))).toEqual([
      expect.stringMatching(/^networks\.base\.settle\.revertPenaltySeconds: /),
    ]);
  });

  it('reads settle.minBalance exactly, in wei, with or without its unit; none by default', () => {
    const settleOf = (extra: string) => {
      const r = parseConfigText(MINIMAL.replace('privateKey: "${KEY}"', `privateKey: "\${KEY}"${extra}`), { KEY });
      if (!r.ok) throw new Error(r.problems.join('\n'));
      return r.config.networks.get('base')?.settle;
    };
    expect(settleOf('')).toMatchObject({ minBalanceWei: undefined });
    expect(settleOf(', minBalance: "0.002 ETH"')).toMatchObject({ minBalanceWei: '2000000000000000' });
    expect(settleOf(', minBalance: "0.000000000000000001"')).toMatchObject({ minBalanceWei: '1' });
    for (const bad of ['"1e3 ETH"', '"-1 ETH"', '"0.0000000000000000001"', '"2 GWEI"']) {
      expect(problemsOf(MINIMAL.replace('privateKey: "${KEY}"', `privateKey: "\${KEY}", minBalance: ${bad}`))).toEqual([expect.stringMatching(/^networks\.base\.settle\.minBalance: /)]);
    }
  });

  it('reads limits.failedPayments and networks.*.multicall3, with their defaults; refuses bad values with their paths', () => {
    const set = parseConfigText(
      MINIMAL.replace('routes:', 'limits: { failedPayments: { perClient: { max: 5 } } }\nroutes:').replace('privateKey: "${KEY}" }', 'privateKey: "${KEY}" }, multicall3: false'),
      { KEY },
    );
    if (!set.ok) throw new Error(set.problems.join('\n'));
    expect(set.config.limits.failedPayments).toEqual({ perClient: { max: 5, perSeconds: 60 }, perPayer: { max: 20, perSeconds: 60 } });
    expect(set.config.networks.get('base')?.multicall3).toBeUndefined();
    const defaults = parseConfigText(MINIMAL, { KEY });
    expect(defaults.ok && defaults.config.networks.get('base')?.multicall3).toBe('0xcA11bde05977b3631167028862bE2a173976CA11');
    expect(problemsOf(MINIMAL.replace('routes:', 'limits: { failedPayments: { perPayer: { max: 0 } } }\nroutes:'))).toEqual([
      expect.stringMatching(/^limits\.failedPayments\.perPayer\.max: /),
    ]);
    expect(problemsOf(MINIMAL.replace('privateKey: "${KEY}" }', 'privateKey: "${KEY}" }, multicall3: "0x12"'))).toEqual([
      expect.stringMatching(/^networks\.base\.multicall3/),
    ]);
  });

  it('reads settlement: deferred with its terms (route over defaults over the built-in ones) and settle.batch; refuses it where no own key or no Multicall3 can batch', () => {
    const yaml = MINIMAL.replace('routes:', 'defaults: { deferred: { maxUnsettledTotal: "$50" } }\nroutes:')
      .replace('{ match: "GET /weather", price: "$0.01" }', '{ match: "GET /weather", price: "$0.01", settlement: deferred, deferred: { penaltySeconds: 60 } }')
      .replace('privateKey: "${KEY}" }', 'privateKey: "${KEY}", batch: { maxSize: 20 } }');
    const r = parseConfigText(yaml, { KEY });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    expect(r.config.routes[0]).toMatchObject({ settlement: 'deferred', deferred: { maxUnsettledPerPayer: '$0.10', maxUnsettledTotal: '$50', penaltySeconds: 60 } });
    expect(r.config.routes[1]?.deferred).toBeUndefined();
    const settle = r.config.networks.get('base')?.settle;
    expect(settle?.mode === 'local' && settle.batch).toEqual({ maxSize: 20, maxWaitMs: 1_000, maxGas: 5_000_000, marginSeconds: 30 });
    const defaults = parseConfigText(MINIMAL, { KEY });
    const plain = defaults.ok ? defaults.config.networks.get('base')?.settle : undefined;
    expect(plain?.mode === 'local' && plain.batch).toEqual({ maxSize: 50, maxWaitMs: 1_000, maxGas: 5_000_000, marginSeconds: 30 });

    expect(r.config.warnings).toEqual([]);
    const slow = parseConfigText(yaml.replace('batch: { maxSize: 20 }', 'batch: { maxWaitMs: 300000 }'), { KEY });
    expect(slow.ok && slow.config.warnings).toEqual([expect.stringMatching(/^routes\[0\]: settlement: deferred, but its payments are valid for 300 s .* every payment will settle at once/)]);

    const deferredRoute = MINIMAL.replace('{ match: "GET /weather", price: "$0.01" }', '{ match: "GET /weather", price: "$0.01", settlement: deferred }');
    expect(problemsOf(deferredRoute.replace('privateKey: "${KEY}" }', 'privateKey: "${KEY}" }, multicall3: false'))).toEqual([
      expect.stringMatching(/^routes\[0\]\.settlement: deferred settles in batches through Multicall3/),
    ]);
    expect(problemsOf(deferredRoute.replace('settle: { mode: local, privateKey: "${KEY}" }', 'settle: { mode: facilitator, url: "https://x402.org/facilitator" }'))).toEqual([
      expect.stringMatching(/^routes\[0\]\.settlement: deferred settles in batches with the gateway's own key/),
    ]);
    expect(problemsOf(deferredRoute.replace('settlement: deferred }', 'settlement: deferred, deferred: { maxUnsettledPerPayer: "0.10" } }'))).toEqual([
      expect.stringMatching(/^routes\[0\]\.deferred\.maxUnsettledPerPayer: /),
    ]);
  });

  it('reads ledger.retention as a duration; refuses one without a unit', () => {
    const r = parseConfigText(`${MINIMAL}ledger: { path: ./x.db, retention: 36h }\n`, { KEY });
    expect(r.ok && r.config.ledger.retentionMs).toBe(36 * 3_600_000);
    expect(problemsOf(`${MINIMAL}ledger: { path: ./x.db, retention: 7 }\n`)).toEqual([expect.stringMatching(/^ledger/)]);
  });

  it('keeps the status-line timeout and body idle timeouts apart, limits uncharged forwards, and can protect prefixes', () => {
    const defaults = parseConfigText(MINIMAL, { KEY });
    if (!defaults.ok) throw new Error(defaults.problems.join('\n'));
    expect(defaults.config.upstreams.get('api')).toMatchObject({ timeoutMs: 30_000, idleTimeoutMs: 30_000, sseIdleTimeoutMs: undefined });
    expect(defaults.config.limits).toEqual({
      unchargedForwards: { max: 10, perSeconds: 60 },
      redeliveries: 3,
      failedPayments: { perClient: { max: 60, perSeconds: 60 }, perPayer: { max: 20, perSeconds: 60 } },
    });
    expect([defaults.config.unmatched, defaults.config.protectPrefixes, defaults.config.warnings]).toEqual(['deny', false, []]);
    const set = parseConfigText(
      MINIMAL.replace('url: "http://127.0.0.1:8080" }', 'url: "http://127.0.0.1:8080", timeoutMs: 5000, sseIdleTimeoutMs: 60000 }')
        .replace('routes:', 'limits: { unchargedForwards: { max: 2 } }\ndefaults: { unmatched: { free: true, protectPrefixes: true } }\nroutes:'),
      { KEY },
    );
    if (!set.ok) throw new Error(set.problems.join('\n'));
    expect(set.config.upstreams.get('api')).toMatchObject({ timeoutMs: 5_000, idleTimeoutMs: 5_000, sseIdleTimeoutMs: 60_000 });
    expect(set.config.limits.unchargedForwards).toEqual({ max: 2, perSeconds: 60 });
    expect([set.config.unmatched, set.config.protectPrefixes, set.config.warnings]).toEqual(['free', true, []]);
    const open = parseConfigText(MINIMAL.replace('routes:', 'defaults: { unmatched: free }\nroutes:'), { KEY });
    expect(open.ok && open.config.warnings).toEqual([expect.stringMatching(/^routes\[0\]: with unmatched: free, paths under "GET \/weather"/)]);
    expect(problemsOf(MINIMAL.replace('routes:', 'limits: { unchargedForwards: { max: 0 } }\nroutes:'))).toEqual([expect.stringMatching(/^limits\.unchargedForwards\.max: /)]);
    expect(problemsOf(MINIMAL.replace('routes:', 'defaults: { unmatched: { free: false } }\nroutes:'))).toEqual([expect.stringMatching(/^defaults\.unmatched/)]);
  });

  it('lets a declared asset replace the built-in one with the same id', () => {
    const yaml = MINIMAL.replace('upstreams:', `assets:\n  - { id: usdc@base, network: base, address: "0x2222222222222222222222222222222222222222", name: "Test", version: "1", decimals: 2 }\nupstreams:`);
    const r = parseConfigText(yaml, { KEY });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const route = r.config.routes[0];
    expect(route?.price.kind === 'priced' && route.price.options[0]).toMatchObject({ amount: 1n, asset: { decimals: 2, eip712Name: 'Test' } });
  });

  it('reports every problem at once, each with its YAML path', () => {
    const problems = problemsOf(`
payTo: "0x12"
listen: { port: 99999 }
networks:
  base: { network: "base", settle: { mode: local, privateKey: "\${NOPE}" } }
upstreams:
  api: { url: "ftp://x" }
routes:
  - { match: "GET /a", price: "$0.01", colour: red }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'networks.base.settle.privateKey: environment variable NOPE is not set',
        'listen.port: Too big: expected number to be <=65535',
        'payTo: must be a 0x-prefixed 20-byte hex address',
        'networks.base.network: must be a CAIP-2 EVM network id like eip155:8453',
        'upstreams.api.url: must be an http(s) URL',
        'routes[0]: unknown key "colour"',
      ]),
    );
  });

  it('reports cross-reference and price problems with their paths', () => {
    const problems = problemsOf(
      MINIMAL.replace('routes:', 'routes:\n  - { match: "FETCH /x", upstream: nope, price: "$0.0000001" }\n  - { match: "GET /y", price: { amount: "010", asset: usdc@mars } }'),
    );
    expect(problems).toEqual([
      'routes[0].match: "FETCH" is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE or *)',
      'routes[0].upstream: unknown upstream "nope"',
      'routes[1].price.asset: unknown asset "usdc@mars" (known: usdc@base)',
    ]);
    expect(problemsOf(MINIMAL.replace('"$0.01"', '"$0.0000001"'))).toEqual([`routes[0].price: "$0.0000001" is below the asset's smallest unit (6 decimals)`]);
    expect(problemsOf(MINIMAL.replace('"$0.01"', '{ amount: "010", asset: usdc@base }'))).toEqual([
      'routes[0].price.amount: "010" is not an atomic amount (a plain integer like "10000")',
    ]);
  });

  it('needs an rpc to verify or settle locally, and an upstream for unmatched: free', () => {
    expect(problemsOf(MINIMAL.replace('rpc: "http://127.0.0.1:8545", ', ''))).toEqual(['networks.base.rpc: required to settle locally']);
    const twoUpstreams = MINIMAL.replace('upstreams:', 'defaults: { unmatched: free }\nupstreams:\n  other: { url: "http://127.0.0.1:9" }').replace('"$0.01" }', '"$0.01", upstream: api }').replace('price: free }', 'price: free, upstream: api }');
    expect(problemsOf(twoUpstreams)).toEqual(['defaults.upstream: unmatched: free needs an upstream to send unmatched requests to']);
  });

  it('refuses a payment validity too short for settlement: after in front of a slow upstream', () => {
    expect(problemsOf(MINIMAL.replace('url: "http://127.0.0.1:8080" }', 'url: "http://127.0.0.1:8080", timeoutMs: 60000 }').replace('routes:', 'defaults: { maxTimeoutSeconds: 60 }\nroutes:'))).toEqual([
      'defaults.maxTimeoutSeconds: 60 is too short for settlement: after in front of upstream "api" (timeoutMs 60000); it must be at least 75',
    ]);
  });

  it('fills the server limits with their defaults; a route without maxBodyBytes takes server.maxBodyBytes', () => {
    const r = parseConfigText(MINIMAL, { KEY });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    expect(r.config.server).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      idleTimeoutMs: 60_000,
      maxHeaderBytes: 16_384,
      maxBodyBytes: 1_048_576,
    });
    expect(r.config.routes.map((route) => route.maxBodyBytes)).toEqual([undefined, undefined]);
    const partial = parseConfigText(`${MINIMAL}server: { idleTimeoutMs: 5000, maxBodyBytes: 0 }\n`, { KEY });
    expect(partial.ok && partial.config.server).toMatchObject({ headersTimeoutMs: 10_000, idleTimeoutMs: 5_000, maxBodyBytes: 0 });
    const perRoute = parseConfigText(MINIMAL.replace('price: "$0.01" }', 'price: "$0.01", maxBodyBytes: 65536 }'), { KEY });
    expect(perRoute.ok && perRoute.config.routes.map((route) => route.maxBodyBytes)).toEqual([65_536, undefined]);
  });

  it.each([
    ['a head allowed longer than the whole request', 'server: { headersTimeoutMs: 40000 }', ['server.headersTimeoutMs: must not exceed requestTimeoutMs']],
    ['an unknown key', 'server: { bodyTimeoutMs: 1000 }', ['server: unknown key "bodyTimeoutMs"']],
    ['a zero timeout', 'server: { keepAliveTimeoutMs: 0 }', [expect.stringMatching(/^server\.keepAliveTimeoutMs: /)]],
    ['a fractional timeout', 'server: { idleTimeoutMs: 1.5 }', [expect.stringMatching(/^server\.idleTimeoutMs: /)]],
    ['a timeout over an hour', 'server: { requestTimeoutMs: 3600001 }', [expect.stringMatching(/^server\.requestTimeoutMs: /)]],
    ['a head limit under 1 KiB', 'server: { maxHeaderBytes: 512 }', [expect.stringMatching(/^server\.maxHeaderBytes: /)]],
    ['a negative body limit', 'server: { maxBodyBytes: -1 }', [expect.stringMatching(/^server\.maxBodyBytes: /)]],
    ['a body limit as a string', 'server: { maxBodyBytes: "1MiB" }', [expect.stringMatching(/^server\.maxBodyBytes: /)]],
  ])('refuses server limits with %s', (_what, section, problems) => {
    expect(problemsOf(`${MINIMAL}${section}\n`)).toEqual(problems);
  });

  it("refuses a route's maxBodyBytes that is not a byte count", () => {
    expect(problemsOf(MINIMAL.replace('price: free }', 'price: free, maxBodyBytes: -5 }'))).toEqual([expect.stringMatching(/^routes\[1\]\.maxBodyBytes: /)]);
    expect(problemsOf(MINIMAL.replace('price: free }', 'price: free, maxBodyBytes: 2199023255553 }'))).toEqual([expect.stringMatching(/^routes\[1\]\.maxBodyBytes: /)]);
  });

  it('refuses trustProxy: true together with CIDR allowlists (X-Forwarded-For could be forged)', () => {
    const yaml = MINIMAL.replace('routes:', 'trustProxy: true\ndefaults: { allow: { cidrs: ["10.0.0.0/8"] } }\nroutes:');
    expect(problemsOf(yaml)[0]).toMatch(/^trustProxy: true trusts any X-Forwarded-For/);
    expect(problemsOf(yaml.replace('trustProxy: true', 'trustProxy: 1'))).toEqual([]);
    expect(problemsOf(MINIMAL.replace('routes:', 'defaults: { allow: { cidrs: ["10.0.0.300/8", "nope"] } }\nroutes:'))).toEqual([
      'defaults.allow.cidrs[0]: "10.0.0.300/8" is not an IP address or CIDR block',
      'defaults.allow.cidrs[1]: "nope" is not an IP address or CIDR block',
    ]);
  });

  it.each([
    ['a chain id too large', MINIMAL.replace('"eip155:8453"', '"eip155:99999999999999999999"'), /^networks\.base\.network: /],
    [
      'verify: facilitator without facilitator settlement',
      MINIMAL.replace('settle: { mode: local', 'verify: facilitator, settle: { mode: local'),
      /^networks\.base\.verify: "facilitator" needs settle\.mode: facilitator$/,
    ],
    [
      'an asset on an unknown network',
      MINIMAL.replace('upstreams:', 'assets:\n  - { id: usdc@nowhere, network: nowhere, address: "0x2222222222222222222222222222222222222222", name: "T", version: "1", decimals: 6 }\nupstreams:'),
      /^assets\[0\]\.network: unknown network "nowhere"/,
    ],
    [
      'an asset id that does not name its network',
      MINIMAL.replace('upstreams:', 'assets:\n  - { id: usdt@eth, network: base, address: "0x2222222222222222222222222222222222222222", name: "T", version: "1", decimals: 6 }\nupstreams:'),
      /^assets\[0\]\.id: "usdt@eth" must end with "@base"$/,
    ],
    ['a dollar price on a chain without a known USDC', MINIMAL.replace('"eip155:8453"', '"eip155:424242"'), /^routes\[0\]\.price: no asset to charge in/],
    ['an unknown default upstream', MINIMAL.replace('routes:', 'defaults: { upstream: nope }\nroutes:'), /^defaults\.upstream: unknown upstream "nope"$/],
    [
      'a route without an upstream when several exist',
      MINIMAL.replace('upstreams:\n  api: { url: "http://127.0.0.1:8080" }', 'upstreams:\n  a: { url: "http://127.0.0.1:8080" }\n  b: { url: "http://127.0.0.1:8081" }'),
      /^routes\[0\]\.upstream: required \(there is no defaults\.upstream\)$/,
    ],
    ['a malformed private key', MINIMAL, /^networks\.base\.settle\.privateKey: /, { KEY: '0x1234' }],
  ] as [string, string, RegExp, Record<string, string>?][])('refuses %s, naming where', (_what, yaml, problem, env) => {
    const problems = problemsOf(yaml, env ?? { KEY });
    expect(problems.some((p) => problem.test(p)), problems.join('\n')).toBe(true);
  });

  it('refuses YAML syntax errors and duplicate keys', () => {
    expect(problemsOf('payTo: [')[0]).toMatch(/^YAML: /);
    expect(problemsOf('payTo: a\npayTo: b\n')[0]).toMatch(/^YAML: .*[Uu]nique|duplicate/i);
  });
});

describe('expandEnv', () => {
  it('expands ${VAR}, ${VAR:-fallback} and $${ escapes inside strings only', () => {
    const problems: string[] = [];
    const out = expandEnv({ a: 'x${A}y', b: ['${B:-dflt}'], c: 3, d: '$${literal}', e: { f: '${MISSING}' } }, { A: '1' }, problems);
    expect(out).toEqual({ a: 'x1y', b: ['dflt'], c: 3, d: '${literal}', e: { f: '' } });
    expect(problems).toEqual(['e.f: environment variable MISSING is not set']);
  });
});
