/**
 * Settlement through a CDP-authenticated facilitator, on a real chain: the gateway signs a JWT
 * for every facilitator call with a CDP API key (Ed25519 or P-256), a local stand-in for CDP
 * checks each token as CDP does (test/helpers/cdp-facilitator.ts) and forwards to the official
 * facilitator settling on anvil. Balances are read on chain.
 *
 * - a good key: a paid request is served and charged once;
 * - a key CDP does not know: the gateway does not start (`start` exits 1), and says which key;
 * - a key refused after start (for everything, or only for /settle): 502
 *   GW_ERR_FACILITATOR_AUTH, counted as an infrastructure error, nothing charged; once the key
 *   is good again, paying works.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { loggerOptions } from '../../src/log.js';
import type { RunningGateway } from '../../src/server.js';
import { PAYEE, SETTLER_KEY, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { ed25519CdpKey, p256CdpKey, startCdpFacilitator, type CdpFacilitator, type CdpTestKey } from '../helpers/cdp-facilitator.js';
import { startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const CENT = 10_000n;
const ED = ed25519CdpKey('organizations/test-org/apiKeys/ed25519-key');
const EC = p256CdpKey('organizations/test-org/apiKeys/p256-key');

let world: ChainWorld;
let upstream: TestUpstream;
let real: TestFacilitator;
let cdp: CdpFacilitator;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  real = await startTestFacilitator({ rpcUrl: world.chain.rpcUrl, chainId: 8453, privateKey: SETTLER_KEY });
  cdp = await startCdpFacilitator({ forwardTo: real.url, keys: [ED, EC] });
});

afterAll(async () => {
  await cdp?.close();
  await real?.close();
  await upstream?.close();
  await world?.stop();
});

/** The config: network `base` settled (and so verified) by the CDP facilitator with the key from the environment. */
function cdpYaml(url: string): string {
  return `${gatewayYamlHead({
    payTo: PAYEE,
    network: `base: { network: "eip155:8453", settle: { mode: facilitator, url: "${url}", cdp: { apiKeyId: "\${CDP_API_KEY_ID}", apiKeySecret: "\${CDP_API_KEY_SECRET}" } } }`,
  })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /report", price: "$0.01", settlement: before }
`;
}

/** Every log line the gateway writes, at trace level, through the gateway's own redaction. */
function capturingLogger() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: pino(loggerOptions('trace'), stream), text: () => chunks.join('') };
}

async function infrastructureErrors(gw: RunningGateway, code: string): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`x402_gateway_infrastructure_errors_total{code="${code}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

function env(key: CdpTestKey): Record<string, string> {
  return { CDP_API_KEY_ID: key.id, CDP_API_KEY_SECRET: key.secret };
}

describe.each([
  ['Ed25519', ED],
  ['P-256 PEM', EC],
] as const)('settle: facilitator with a CDP key (%s)', (_name, key) => {
  let gw: RunningGateway;
  let logs: ReturnType<typeof capturingLogger>;

  beforeAll(async () => {
    logs = capturingLogger();
    gw = await startGateway(cdpYaml(cdp.url), { env: env(key), logger: logs.logger });
  });

  afterAll(async () => {
    cdp.restore();
    await gw?.close();
  });

  it('serves a paid request and charges it once; every facilitator call passed the CDP checks', async () => {
    const t0 = Date.now();
    const from = cdp.calls.length;
    const delta = await world.moved(async () => {
      const res = await v2Fetch()(`${gw.url}/weather`);
      expect(res.status).toBe(200);
    });
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    expect((await gw.ledger.receipts({ since: t0 })).map((r) => r.status)).toEqual(['settled']);
    const calls = cdp.calls.slice(from);
    expect(calls.map((c) => [c.method, c.path, c.refused, c.status])).toEqual([
      ['POST', '/platform/v2/x402/verify', undefined, 200],
      ['POST', '/platform/v2/x402/settle', undefined, 200],
    ]);
    // The start-up check was signed too.
    expect(cdp.calls.some((c) => c.path === '/platform/v2/x402/supported' && c.refused === undefined && c.token !== undefined)).toBe(true);
  });

  it('a key refused after start: 502 GW_ERR_FACILITATOR_AUTH, counted, nothing forwarded, nothing charged', async () => {
    cdp.revoke(key.id);
    const seen = upstream.seen.length;
    const before = await infrastructureErrors(gw, 'GW_ERR_FACILITATOR_AUTH');
    const delta = await world.moved(async () => {
      const res = await v2Fetch()(`${gw.url}/weather`);
      expect(res.status).toBe(502);
      expect(res.headers.get('payment-required')).toBeNull();
      expect(await res.json()).toMatchObject({ statusCode: 502, code: 'GW_ERR_FACILITATOR_AUTH' });
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect(upstream.seen.length).toBe(seen);
    expect(await infrastructureErrors(gw, 'GW_ERR_FACILITATOR_AUTH')).toBe(before + 1);
    cdp.restore();
  });

  it('a key refused for /settle only (after verify passed): 502, not 402, for settlement after and before; nothing charged', async () => {
    cdp.revoke(key.id, ['settle']);
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      for (const path of ['/weather', '/report']) {
        const res = await v2Fetch()(`${gw.url}${path}`);
        expect(res.status, path).toBe(502);
        expect(await res.json()).toMatchObject({ code: 'GW_ERR_FACILITATOR_AUTH' });
      }
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    const rows = await gw.ledger.receipts({ since: t0 });
    expect(rows.map((r) => [r.status, r.reason])).toEqual([
      ['settle_failed', 'facilitator_auth_refused'],
      ['settle_failed', 'facilitator_auth_refused'],
    ]);
    cdp.restore();
    // The key is good again: paying works, and charges once.
    const again = await world.moved(async () => {
      expect((await v2Fetch()(`${gw.url}/report`)).status).toBe(200);
    });
    expect(again).toEqual({ payer: -CENT, payee: CENT });
  });

  it('never logs the secret or a token', () => {
    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    for (const part of key.secret.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) expect(text).not.toContain(part);
    for (const call of cdp.calls) if (call.token !== undefined) expect(text).not.toContain(call.token.split('.')[2] ?? call.token);
  });
});

describe('a key CDP refuses at start-up', () => {
  it('stops the start with a message naming the key id and the facilitator, never the secret', async () => {
    const stranger = ed25519CdpKey('organizations/test-org/apiKeys/not-registered');
    const error = await startGateway(cdpYaml(cdp.url), { env: env(stranger) }).then(
      async (gw) => {
        await gw.close();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(Error);
    const message = error instanceof Error ? error.message : '';
    expect(message).toBe(
      `network "base": the facilitator at ${new URL(cdp.url).origin} refused CDP API key "${stranger.id}" (check CDP_API_KEY_ID / CDP_API_KEY_SECRET, and that the key is enabled)`,
    );
    expect(message).not.toContain(stranger.secret.slice(0, 16));
  });

  it('`x402-gateway start` says so in one line and exits 1', async () => {
    const stranger = p256CdpKey('organizations/test-org/apiKeys/not-registered-either');
    const dir = mkdtempSync(join(tmpdir(), 'x402-cdp-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, `${cdpYaml(cdp.url)}\nledger: { path: "${join(dir, 'ledger.db')}" }\nlog: { level: silent }\n`);
    const err: string[] = [];
    const io = { env: env(stranger), out: () => {}, err: (line: string) => void err.push(line), onSignal: () => {} };
    expect(await runCli(['start', '--config', path], io)).toBe(1);
    expect(err).toEqual([`x402-gateway: could not start: network "base": the facilitator at ${new URL(cdp.url).origin} refused CDP API key "${stranger.id}" (check CDP_API_KEY_ID / CDP_API_KEY_SECRET, and that the key is enabled)`]);
  });

  it('a refused key on a fallback stops the start as well', async () => {
    const stranger = p256CdpKey('organizations/test-org/apiKeys/stale-fallback');
    const yaml = cdpYaml(cdp.url).replace(
      '} } }',
      `}, fallbacks: [{ url: "${cdp.url}", cdp: { apiKeyId: "${stranger.id}", apiKeySecret: "\${STALE_SECRET}" } }] } }`,
    );
    await expect(startGateway(yaml, { env: { ...env(ED), STALE_SECRET: stranger.secret } })).rejects.toThrow(`refused CDP API key "${stranger.id}"`);
  });
});
