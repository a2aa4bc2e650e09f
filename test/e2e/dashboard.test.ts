/**
 * The admin dashboard in a real browser (headless Chromium from @sparticuz/chromium, driven by
 * puppeteer-core) over a gateway that took real payments on the dev chain: the figures on the
 * rendered page match the ledger and the on-chain balance movement, and the admin port refuses
 * the dashboard, its API and reload without the token while the probes and /metrics stay open.
 */
import { mkdirSync } from 'node:fs';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atomicToDecimal } from '../../src/pricing.js';
import type { RunningGateway } from '../../src/server.js';
import { localSettlementBase, PAYEE, startChainWorld, UNFUNDED_KEY, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { startGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'dashboard-test-token-0123456789';
const SCREENSHOT = new URL('../../.cache/dashboard.png', import.meta.url);

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;
let browser: Browser;
let moved: { payer: bigint; payee: bigint };

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  gw = await startGateway(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: "\${ADMIN_TOKEN}" }
payTo: "${PAYEE}"
networks:
  ${localSettlementBase(world.chain.rpcUrl)}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /report", price: "$0.02" }
`, { env: { ADMIN_TOKEN: TOKEN } });
  moved = await world.moved(async () => {
    for (const path of ['/weather', '/weather', '/report']) expect((await v2Fetch()(`${gw.url}${path}`)).status).toBe(200);
    // The unfunded payer signs, the gateway refuses it before settling: a `refused` row.
    expect((await v2Fetch(UNFUNDED_KEY)(`${gw.url}/weather`)).status).toBe(402);
  });
  const chromium = (await import('@sparticuz/chromium')).default;
  const puppeteer = (await import('puppeteer-core')).default;
  browser = await puppeteer.launch({ executablePath: await chromium.executablePath(), args: [...new Set([...chromium.args, '--no-sandbox'])], headless: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

describe('the admin dashboard', () => {
  it('shows revenue, outcomes and receipts that match the ledger and the chain', async () => {
    const started = Date.now();
    const rows = await gw.ledger.receipts({ limit: 100 });
    const settled = rows.filter((r) => r.status === 'settled');
    expect(settled).toHaveLength(3);
    const total = settled.reduce((sum, r) => sum + BigInt(r.amount), 0n);
    expect(total).toBe(moved.payee);
    expect(-total).toBe(moved.payer);

    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const res = await page.goto(`${gw.adminUrl}/dashboard?token=${TOKEN}`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 15_000 });
    // The token left the address bar.
    expect(page.url()).toBe(`${gw.adminUrl}/dashboard`);

    const totals = await page.$$eval('#revenue-totals tr[data-asset]', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-asset'), tr.getAttribute('data-atomic'), tr.querySelector('.amount')?.textContent, tr.querySelector('.count')?.textContent]),
    );
    expect(totals).toEqual([['usdc@base', total.toString(), `${atomicToDecimal(total, 6)} USDC`, '3']]);

    const byRoute = await page.$$eval('#revenue-routes tr[data-route]', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-route'), tr.querySelector('.amount')?.textContent, tr.querySelector('.count')?.textContent]),
    );
    const routeSum = (route: string) => settled.filter((r) => r.route === route).reduce((s, r) => s + BigInt(r.amount), 0n);
    expect(byRoute).toEqual([
      ['GET /report', `${atomicToDecimal(routeSum('GET /report'), 6)} USDC`, '1'],
      ['GET /weather', `${atomicToDecimal(routeSum('GET /weather'), 6)} USDC`, '2'],
    ]);
    expect(routeSum('GET /report')).toBe(20_000n);

    const statusCounts = Object.fromEntries(
      await page.$$eval('#outcomes-receipts tr[data-status]', (trs) => trs.map((tr) => [tr.getAttribute('data-status'), Number(tr.querySelector('.count')?.textContent)])),
    );
    expect(statusCounts).toMatchObject({ settled: 3, refused: rows.filter((r) => r.status === 'refused').length, pending: 0, settle_failed: 0 });
    expect(statusCounts['refused']).toBeGreaterThanOrEqual(1);
    const requestCounts = Object.fromEntries(
      await page.$$eval('#outcomes-requests tr[data-outcome]', (trs) => trs.map((tr) => [tr.getAttribute('data-outcome'), Number(tr.querySelector('.count')?.textContent)])),
    );
    expect(requestCounts['paid']).toBe(3);
    expect(requestCounts['refused']).toBeGreaterThanOrEqual(1);
    expect(await page.$eval('#latency-count', (e) => e.textContent)).toBe('3');
    expect(await page.$eval('#config-hash', (e) => e.textContent)).toBe(gw.config.hash);
    expect(await page.$$eval('#revenue-hourly svg rect.bar', (r) => r.length)).toBe(24);

    const table = await page.$$eval('#receipts tr.receipt', (trs) =>
      trs.map((tr) => ({ id: tr.getAttribute('data-request-id'), status: tr.getAttribute('data-status'), href: tr.querySelector('a.tx')?.getAttribute('href') ?? null })),
    );
    expect(table.map((t) => t.id)).toEqual(rows.map((r) => r.requestId));
    for (const r of settled) {
      expect(table.find((t) => t.id === r.requestId)?.href).toBe(`https://basescan.org/tx/${r.transaction}`);
    }
    mkdirSync(new URL('.', SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
    await page.close();
    console.log(`dashboard browser check took ${Date.now() - started} ms`);
  });

  it('refuses the dashboard, its API and reload without the token; the probes and /metrics stay open', async () => {
    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${gw.adminUrl}${path}`, { headers });
    for (const path of ['/dashboard', '/admin/api/summary', '/admin/api/receipts?limit=5', '/dashboard?token=wrong-token-but-long-enough']) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toMatchObject({ code: 'GW_ERR_ADMIN_UNAUTHORIZED' });
    }
    expect((await get('/admin/api/summary', { authorization: 'Bearer wrong-token-but-long-enough' })).status).toBe(401);
    // ?token= is for the browser page only, not the API.
    expect((await get(`/admin/api/summary?token=${TOKEN}`)).status).toBe(401);
    expect((await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).not.toBe(401);
    expect((await get('/admin/api/summary', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('x402_gateway_requests_total');
  });
});
