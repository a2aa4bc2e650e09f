/**
 * The paid path's HTTP behaviour in milliseconds: a real gateway (runGateway), a real upstream and
 * a real SQLite ledger, with scripted, recording payment backends in place of the chain. Every case
 * here also has its on-chain counterpart in test/e2e, which is what proves money moves; these pin
 * what the gateway answers, forwards and records for each outcome.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import type { Receipt } from '../../src/payments/ports.js';
import type { RunningGateway } from '../../src/server.js';
import { runGateway } from '../../src/server.js';
import { FAKE_TX, fakePayments, paymentHeaderFor, type FakePayments } from '../helpers/fake-payments.js';
import { gatewayYamlHead, parseTestConfig, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';

let upstream: TestUpstream;
let fake: FakePayments;
let gw: RunningGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  fake = fakePayments();
  const config = parseTestConfig(`${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstream.url}", timeoutMs: 1000 }
  patient: { url: "${upstream.url}", timeoutMs: 5000 }
defaults: { upstream: api }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /after/status/:code", price: "$0.01" }
  - { match: "GET /before/status/:code", price: "$0.02", settlement: before }
  - { match: "GET /slow", price: "$0.01", maxTimeoutSeconds: 60 }
  - { match: "GET /patient/slow", upstream: patient, price: "$0.01", maxTimeoutSeconds: 60 }
  - { match: "GET /free", price: free }
`);
  gw = await runGateway(config, { logger: pino({ level: 'silent' }), ledger: new SqliteLedger(':memory:'), backends: fake.backends });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

beforeEach(() => {
  fake.verifyAnswer = undefined;
  fake.settleAnswer = undefined;
  fake.settleDelayMs = 0;
});

/** A payment header for `path`, against the gateway's own 402. */
async function paymentFor(path: string): Promise<Record<string, string>> {
  const challenge = await send(gw.url, 'GET', path);
  expect(challenge.status).toBe(402);
  const required = decodeHeader(challenge.headers['payment-required']) as { accepts: Record<string, unknown>[] };
  const accepted = required.accepts[0];
  if (!accepted) throw new Error('no requirement offered');
  return paymentHeaderFor(accepted);
}

async function rowsSince(t0: number): Promise<[string, string][]> {
  return (await gw.ledger.receipts({ since: t0 })).reverse().map((r: Receipt) => [r.status, r.reason]);
}

const hitsOf = (prefix: string) => upstream.seen.filter((s) => s.url.startsWith(prefix)).length;

describe('the paid path against recording fakes', () => {
  it('challenges an unpaid request and forwards nothing', async () => {
    const before = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/weather');
    expect(res.status).toBe(402);
    expect(decodeHeader(res.headers['payment-required'])).toMatchObject({ x402Version: 2, accepts: [{ amount: '10000', payTo: PAY_TO }] });
    expect(upstream.seen.length).toBe(before);
  });

  it('refuses what the verifier refuses: 402 with its reason, nothing forwarded or settled; a row only once the signature checked out', async () => {
    const before = upstream.seen.length;
    const settled = fake.settled.length;
    const t0 = Date.now();
    // Before the signature checked out: anyone's junk, counted in the metrics, no row.
    fake.verifyAnswer = () => ({ valid: false, reason: 'invalid_exact_evm_signature' });
    const forged = await send(gw.url, 'GET', '/weather', { headers: await paymentFor('/weather') });
    expect(forged.status).toBe(402);
    expect(decodeHeader(forged.headers['payment-required'])).toMatchObject({ error: 'invalid_exact_evm_signature' });
    expect(await rowsSince(t0)).toEqual([]);
    // After it: the payer is proven, and its refusal is kept.
    fake.verifyAnswer = () => ({ valid: false, reason: 'invalid_exact_evm_insufficient_balance' });
    const poor = await send(gw.url, 'GET', '/weather', { headers: await paymentFor('/weather') });
    expect(poor.status).toBe(402);
    expect(await rowsSince(t0)).toEqual([['refused', 'invalid_exact_evm_insufficient_balance']]);
    expect(upstream.seen.length).toBe(before);
    expect(fake.settled.length).toBe(settled);
  });

  it('settles an authorized payment after the upstream answers, with the receipt header; a replay is refused', async () => {
    const header = await paymentFor('/weather');
    const t0 = Date.now();
    const res = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(res.status).toBe(200);
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true, transaction: FAKE_TX, network: 'eip155:8453' });
    expect(res.headers['cache-control']).toContain('private');
    const replay = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(replay.status).toBe(402);
    expect(decodeHeader(replay.headers['payment-required'])).toMatchObject({ error: 'invalid_exact_evm_nonce_already_used' });
    expect(await rowsSince(t0)).toEqual([['settled', ''], ['refused', 'invalid_exact_evm_nonce_already_used']]);
  });

  it('a settlement that fails after the upstream answered hides the body: 402 with the reason and a failure receipt', async () => {
    const header = await paymentFor('/weather');
    fake.settleAnswer = () => ({ success: false, reason: 'invalid_exact_evm_insufficient_balance', maybeOnChain: false });
    const t0 = Date.now();
    const res = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(res.status).toBe(402);
    expect(res.text()).not.toContain('"method"');
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: false, errorReason: 'invalid_exact_evm_insufficient_balance' });
    expect(await rowsSince(t0)).toEqual([['settle_failed', 'invalid_exact_evm_insufficient_balance']]);
  });

  it('a settlement still pending is a 402 settlement_pending that keeps the nonce; the same header waits, then is served once it settles, never charged twice', async () => {
    const header = await paymentFor('/weather');
    fake.settleAnswer = () => ({ success: false, reason: 'settlement_pending', transaction: FAKE_TX, maybeOnChain: true });
    const t0 = Date.now();
    const seen = upstream.seen.length;
    const res = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(res.status).toBe(402);
    // No new challenge: a client that pays again would pay twice.
    expect(res.headers['payment-required']).toBeUndefined();
    expect(res.json()).toEqual({ x402Version: 2, error: 'settlement_pending', transaction: FAKE_TX, accepts: [] });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: false, errorReason: 'settlement_pending', transaction: FAKE_TX });
    fake.settleAnswer = undefined;
    const settled = fake.settled.length;
    // Presented again while the row is pending; it settles (as the reconciler would record it) meanwhile.
    const again = send(gw.url, 'GET', '/weather', { headers: header });
    await new Promise((r) => setTimeout(r, 300));
    const [pending] = await gw.ledger.receipts({ since: t0 });
    if (!pending) throw new Error('no pending row');
    await gw.ledger.record({ ...pending, status: 'settled', reason: 'reconciled' });
    const served = await again;
    expect(served.status).toBe(200);
    expect(decodeHeader(served.headers['payment-response'])).toMatchObject({ success: true, transaction: FAKE_TX });
    expect(fake.settled.length).toBe(settled);
    expect(upstream.seen.length - seen).toBe(2);
    expect((await rowsSince(t0)).map(([status]) => status).sort()).toEqual(['redelivered', 'settled']);
    // Delivered whole: a replay from now on.
    const replay = await send(gw.url, 'GET', '/weather', { headers: header });
    expect(decodeHeader(replay.headers['payment-required'])).toMatchObject({ error: 'invalid_exact_evm_nonce_already_used' });
  });

  it('an upstream answer >= 400 under settlement: after passes through uncharged, and the authorization is usable again', async () => {
    const header = await paymentFor('/after/status/500');
    const t0 = Date.now();
    const settled = fake.settled.length;
    expect((await send(gw.url, 'GET', '/after/status/500', { headers: header })).status).toBe(500);
    expect(fake.settled.length).toBe(settled);
    expect(await rowsSince(t0)).toEqual([['not_charged', 'upstream_status_500']]);
  });

  it('settlement: before settles first, and a failing upstream then keeps the receipt', async () => {
    const header = await paymentFor('/before/status/503');
    const res = await send(gw.url, 'GET', '/before/status/503', { headers: header });
    expect(res.status).toBe(503);
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true, transaction: FAKE_TX });
  });

  it('a caller who hangs up after forwarding is charged when the upstream answers, once; its summary waits for that', async () => {
    const header = await paymentFor('/patient/slow');
    const t0 = Date.now();
    const before = hitsOf('/patient/slow');
    const controller = new AbortController();
    const request = fetch(`${gw.url}/patient/slow`, { headers: header, signal: controller.signal }).catch(() => 'aborted');
    await waitFor(() => hitsOf('/patient/slow') > before);
    controller.abort();
    expect(await request).toBe('aborted');
    // The pending row comes first (written before the settlement is sent), then its outcome.
    await waitFor(async () => (await rowsSince(t0)).some(([status]) => status !== 'pending'), 5_000);
    expect(await rowsSince(t0)).toEqual([['settled', 'client_closed']]);
    expect(hitsOf('/patient/slow') - before).toBe(1);
  });

  it('a caller who hangs up while its payment is still being settled before forwarding is never forwarded unpaid', async () => {
    const header = await paymentFor('/before/status/200');
    fake.settleDelayMs = 300;
    fake.settleAnswer = () => ({ success: false, reason: 'invalid_exact_evm_insufficient_balance', maybeOnChain: false });
    const before = hitsOf('/before');
    const controller = new AbortController();
    const request = fetch(`${gw.url}/before/status/200`, { headers: header, signal: controller.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect(await request).toBe('aborted');
    await new Promise((r) => setTimeout(r, 400));
    expect(hitsOf('/before')).toBe(before);
  });

  it('an unreachable or slow upstream is 502/504 and nothing is charged', async () => {
    const header = await paymentFor('/slow');
    const t0 = Date.now();
    // /slow answers after 2 s; the upstream timeout is 1 s.
    const res = await send(gw.url, 'GET', '/slow', { headers: header });
    expect(res.status).toBe(504);
    expect(res.json()).toMatchObject({ code: 'GW_ERR_UPSTREAM_TIMEOUT' });
    expect(await rowsSince(t0)).toEqual([['not_charged', 'upstream_timeout']]);
  });

  it('free routes pass without the payment backends', async () => {
    const verified = fake.verified.length;
    expect((await send(gw.url, 'GET', '/free')).status).toBe(200);
    expect(fake.verified.length).toBe(verified);
  });
});

describe('drain', () => {
  it('finishes a paid request in flight, settles and records it, then closes; new connections are refused', async () => {
    const drainFake = fakePayments();
    const config = parseTestConfig(`${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstream.url}", timeoutMs: 5000 }
routes:
  - { match: "GET /slow", price: "$0.01", maxTimeoutSeconds: 60 }
`);
    const ledgerPath = join(mkdtempSync(join(tmpdir(), 'x402-drain-')), 'ledger.db');
    const draining = await runGateway(config, { logger: pino({ level: 'silent' }), ledger: new SqliteLedger(ledgerPath), backends: drainFake.backends });
    const challenge = await send(draining.url, 'GET', '/slow');
    const accepted = (decodeHeader(challenge.headers['payment-required']) as { accepts: Record<string, unknown>[] }).accepts[0];
    if (!accepted) throw new Error('no requirement offered');
    const before = hitsOf('/slow');
    const inFlight = send(draining.url, 'GET', '/slow', { headers: { ...paymentHeaderFor(accepted), connection: 'close' } });
    await waitFor(() => hitsOf('/slow') > before);
    const closed = draining.close();
    await expect(send(draining.url, 'GET', '/slow')).rejects.toThrow();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true, transaction: FAKE_TX });
    await closed;
    expect(drainFake.settled.length).toBe(1);
    const reopened = new SqliteLedger(ledgerPath);
    expect((await reopened.receipts({})).map((r) => r.status)).toEqual(['settled']);
    await reopened.close();
  });
});
