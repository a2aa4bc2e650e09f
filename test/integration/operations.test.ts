/**
 * Operating the gateway: hot reload (file edit, ConfigMap-style symlink swap, broken edit, admin
 * endpoint), payments signed at an old price, shadow mode, allowlists, discovery and metrics.
 * Real sockets, real upstream; no chain is needed (no payment here reaches verification).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, v2HttpClient } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGatewayFromFile as startFromFile, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const PAY_TO = '0x1111111111111111111111111111111111111111';
const PARTNER_KEY = 'partner-secret-key';

let upstream: TestUpstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

function yaml(weatherPrice: string, extraRoutes = ''): string {
  return `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstream.url}" }
reload: { debounceMs: 50 }
routes:
  - { match: "GET /weather", price: "${weatherPrice}", description: Weather }
  - match: "GET /partner/**"
    price: "$0.05"
    allow: { apiKeySha256: ["${createHash('sha256').update(PARTNER_KEY).digest('hex')}"], cidrs: ["10.0.0.0/8"] }
  - { match: "GET /local/**", price: "$0.05", allow: { cidrs: ["127.0.0.0/8", "::1"] } }
  - { match: "GET /beta/**", price: "$0.25", mode: shadow }
${extraRoutes}`;
}

let gw: RunningGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function priceOf(url: string): Promise<string | undefined> {
  const res = await send(url, 'GET', '/weather');
  return res.headers['x-payment-amount'] as string | undefined;
}

async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = (await send(url, 'GET', '/metrics')).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('hot reload', () => {
  it('serves a price edited in the file within a second or two, without dropping a request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-reload-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const url = gw.url;
    expect(await priceOf(url)).toBe('0.01');

    let stop = false;
    const statuses: number[] = [];
    const traffic = (async () => {
      while (!stop) statuses.push((await send(url, 'GET', '/weather')).status);
    })();
    writeFileSync(path, yaml('$0.02'));
    const took = await waitFor(async () => (await priceOf(url)) === '0.02');
    stop = true;
    await traffic;
    expect(took).toBeLessThan(2000);
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([402]));
    expect(await metric(gw.adminUrl, 'x402_gateway_config_reloads_total', { result: 'applied' })).toBe(1);
    expect(await metric(gw.adminUrl, 'x402_gateway_config_info', { hash: gw.config.hash })).toBe(1);
  });

  it('follows a Kubernetes ConfigMap update (the ..data symlink swapped, the file never written)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-configmap-'));
    const version = (n: number, price: string) => {
      mkdirSync(join(dir, `..v${n}`));
      writeFileSync(join(dir, `..v${n}`, 'gateway.yaml'), yaml(price));
    };
    version(1, '$0.01');
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/gateway.yaml', join(dir, 'gateway.yaml'));
    gw = await startFromFile(join(dir, 'gateway.yaml'));
    expect(await priceOf(gw.url)).toBe('0.01');
    // What the kubelet does: write the new version, point a temporary link at it, rename it over ..data.
    version(2, '$0.03');
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    const url = gw.url;
    expect(await waitFor(async () => (await priceOf(url)) === '0.03')).toBeLessThan(2000);
  });

  it('keeps the last good config when an edit is broken, and says so in metrics and on the admin endpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-broken-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const adminUrl = gw.adminUrl;
    const hash = gw.config.hash;
    writeFileSync(path, yaml('$0.0000001'));
    await waitFor(async () => ((await metric(adminUrl, 'x402_gateway_config_reloads_total', { result: 'invalid' })) ?? 0) >= 1);
    expect(await priceOf(gw.url)).toBe('0.01');
    expect(gw.config.hash).toBe(hash);
    const res = await send(adminUrl, 'POST', '/admin/reload');
    expect(res.status).toBe(422);
    expect(res.json()).toMatchObject({ result: 'invalid', hash, problems: [`routes[0].price: "$0.0000001" is below the asset's smallest unit (6 decimals)`] });
    writeFileSync(path, yaml('$0.04'));
    const fixed = await send(adminUrl, 'POST', '/admin/reload');
    expect(fixed.status).toBe(200);
    expect(await priceOf(gw.url)).toBe('0.04');
  });

  it('refuses a payment signed at the old price with a fresh challenge at the new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-oldprice-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const http = v2HttpClient();
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${gw.url}/weather`)));
    writeFileSync(path, yaml('$0.02'));
    expect((await send(gw.adminUrl, 'POST', '/admin/reload')).json()).toMatchObject({ result: expect.stringMatching(/applied|unchanged/) });
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(res.status).toBe(402);
    const challenge = decodeHeader(res.headers['payment-required']) as { error: string; accepts: { amount: string }[] };
    expect(challenge.error).toBe('no_matching_requirements');
    expect(challenge.accepts[0]?.amount).toBe('20000');
    expect(upstream.seen.length).toBe(before);
  });

  it('lists the live route table at /.well-known/x402, before and after a reload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-discovery-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const listed = (await send(gw.url, 'GET', '/.well-known/x402')).json() as { items: { resource: string; accepts: { amount: string }[]; metadata: { method: string; mode: string } }[]; config: string };
    expect(listed.config).toBe(gw.config.hash);
    expect(listed.items.map((i) => [i.metadata.method, i.resource.replace(gw?.url ?? '', ''), i.accepts[0]?.amount, i.metadata.mode])).toEqual([
      ['GET', '/weather', '10000', 'enforce'],
      ['GET', '/partner/**', '50000', 'enforce'],
      ['GET', '/local/**', '50000', 'enforce'],
      ['GET', '/beta/**', '250000', 'shadow'],
    ]);
    writeFileSync(path, yaml('$0.07', '  - { match: "POST /v2/jobs", price: "$1.5" }'));
    await send(gw.adminUrl, 'POST', '/admin/reload');
    const after = (await send(gw.url, 'GET', '/.well-known/x402')).json() as typeof listed;
    expect(after.config).toBe(gw.config.hash);
    expect(after.items.map((i) => [i.metadata.method, i.resource.replace(gw?.url ?? '', ''), i.accepts[0]?.amount])).toEqual([
      ['GET', '/weather', '70000'],
      ['GET', '/partner/**', '50000'],
      ['GET', '/local/**', '50000'],
      ['GET', '/beta/**', '250000'],
      ['POST', '/v2/jobs', '1500000'],
    ]);
  });
});

describe('unmatched: free', () => {
  it('passes unpriced paths, but not a priced path under another method or Host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-unmatched-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(
      path,
      yaml('$0.01', '  - { match: "GET /vip", host: vip.example.com, price: "$0.50" }').replace('reload: {', 'defaults: { unmatched: free }\nreload: {'),
    );
    gw = await startFromFile(path);
    const before = upstream.seen.length;
    expect((await send(gw.url, 'GET', '/anything/else')).status).toBe(200);
    expect(upstream.seen.length - before).toBe(1);
    expect((await send(gw.url, 'POST', '/weather')).status).toBe(404);
    expect((await send(gw.url, 'DELETE', '/partner/x')).status).toBe(404);
    expect((await send(gw.url, 'GET', '/vip', { headers: { host: 'other.example.com' } })).status).toBe(404);
    expect((await send(gw.url, 'GET', '/vip', { headers: { host: 'vip.example.com' } })).status).toBe(402);
    expect(upstream.seen.length - before).toBe(1);
  });
});

describe('shadow mode, allowlists and metrics', () => {
  it('passes shadow routes free and counts what they would have earned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-shadow-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const before = upstream.seen.length;
    for (let i = 0; i < 3; i++) expect((await send(gw.url, 'GET', '/beta/report')).status).toBe(200);
    // An upstream failure would not have been charged (settlement: after): not counted as revenue.
    expect((await send(gw.url, 'GET', '/beta/status/500')).status).toBe(500);
    expect(upstream.seen.length - before).toBe(4);
    expect(await metric(gw.adminUrl, 'x402_gateway_shadow_revenue_atomic_total', { route: 'GET /beta/**', asset: 'usdc@base', network: 'eip155:8453' })).toBe(750_000);
    expect(await metric(gw.adminUrl, 'x402_gateway_requests_total', { route: 'GET /beta/**', outcome: 'shadow' })).toBe(4);
  });

  it('lets allowlisted callers pass free (API key or CIDR), strips the key, and counts them apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-allow-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    const withKey = await send(gw.url, 'GET', '/partner/data', { headers: { 'x-api-key': PARTNER_KEY } });
    expect(withKey.status).toBe(200);
    // A priced route's answer stays out of shared caches, whoever got it free.
    expect(withKey.headers['cache-control']).toBe('max-age=60, private');
    expect(upstream.seen.at(-1)?.headers['x-api-key']).toBeUndefined();
    // Stripped on every route, not only the one whose allowlist it belongs to.
    expect((await send(gw.url, 'GET', '/beta/report', { headers: { 'x-api-key': PARTNER_KEY } })).status).toBe(200);
    expect(upstream.seen.at(-1)?.headers['x-api-key']).toBeUndefined();
    expect((await send(gw.url, 'GET', '/partner/data', { headers: { 'x-api-key': 'wrong' } })).status).toBe(402);
    expect((await send(gw.url, 'GET', '/partner/data')).status).toBe(402);
    // The test client connects from 127.0.0.1: inside /local's CIDR, outside /partner's.
    expect((await send(gw.url, 'GET', '/local/data')).status).toBe(200);
    expect(await metric(gw.adminUrl, 'x402_gateway_requests_total', { route: 'GET /partner/**', outcome: 'allowlisted' })).toBe(1);
    expect(await metric(gw.adminUrl, 'x402_gateway_requests_total', { route: 'GET /partner/**', outcome: 'challenged' })).toBe(2);
    expect(await metric(gw.adminUrl, 'x402_gateway_requests_total', { route: 'GET /local/**', outcome: 'allowlisted' })).toBe(1);
  });

  it('exposes every metric family after a scripted mix of requests', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'x402-metrics-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, yaml('$0.01'));
    gw = await startFromFile(path);
    await send(gw.url, 'GET', '/weather');
    await send(gw.url, 'GET', '/weather');
    await send(gw.url, 'GET', '/nowhere');
    await send(gw.url, 'GET', '/weather', { headers: { 'payment-signature': 'garbage!' } });
    await send(gw.url, 'GET', '/beta/x');
    const a = gw.adminUrl;
    expect(await metric(a, 'x402_gateway_requests_total', { route: 'GET /weather', outcome: 'challenged' })).toBe(2);
    expect(await metric(a, 'x402_gateway_requests_total', { route: 'unmatched', outcome: 'not_found' })).toBe(1);
    expect(await metric(a, 'x402_gateway_requests_total', { route: 'GET /weather', outcome: 'refused' })).toBe(1);
    expect(await metric(a, 'x402_gateway_verification_failures_total', { reason: 'invalid_base64' })).toBe(1);
    expect(await metric(a, 'x402_gateway_upstream_duration_seconds_count', { route: 'GET /beta/**' })).toBe(1);
    const text = (await send(a, 'GET', '/metrics')).text();
    for (const family of [
      'x402_gateway_requests_total',
      'x402_gateway_verification_failures_total',
      'x402_gateway_settlements_total',
      'x402_gateway_revenue_atomic_total',
      'x402_gateway_shadow_revenue_atomic_total',
      'x402_gateway_upstream_duration_seconds',
      'x402_gateway_settlement_duration_seconds',
      'x402_gateway_verification_cache_total',
      'x402_gateway_ledger_errors_total',
      'x402_gateway_config_reloads_total',
      'x402_gateway_config_info',
    ]) {
      expect(text).toContain(`# TYPE ${family} `);
    }
  });
});
