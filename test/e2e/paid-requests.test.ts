/**
 * Paying through the gateway with the official clients, on a real chain, with balances checked
 * on chain for every path that can charge, and a ledger row for every outcome.
 */
import { authorizationTypes } from '@x402/evm';
import { encodePaymentSignatureHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequirements } from '@x402/core/types';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { testActions, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_USDC } from '../../src/tools/devchain/token.js';
import type { Receipt } from '../../src/payments/ports.js';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, localSettlementBase, PAYEE, PAYER, PAYER_KEY, startChainWorld, UNFUNDED_KEY, v1Fetch, v2Fetch, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';
import { waitFor } from '../helpers/wait.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const CENT = 10_000n; // $0.01 in USDC atomic units

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;

function gatewayYaml(rpcUrl: string): string {
  return `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(rpcUrl) })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01", description: Weather }
  - { match: "POST /v1/echo", price: "$0.01" }
  - { match: "GET /after/status/:code", price: "$0.01" }
  - { match: "GET /before/status/:code", price: "$0.02", settlement: before }
  - { match: "POST /before/jobs", price: "$0.02", settlement: before }
  - { match: "GET /slow", price: "$0.01" }
  - { match: "GET /sse", price: "$0.01" }
`;
}

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  gw = await startGateway(gatewayYaml(world.chain.rpcUrl));
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

/** Receipt rows written since `time`, oldest first. */
async function receiptsSince(time: number): Promise<Receipt[]> {
  return (await gw.ledger.receipts({ since: time })).reverse();
}

function receiptOf(res: Response, header: 'payment-response' | 'x-payment-response'): Record<string, unknown> {
  return decodeHeader(res.headers.get(header) ?? undefined) as Record<string, unknown>;
}

describe('the official v2 client (@x402/fetch + @x402/evm, default settings)', () => {
  it('pays a GET route: upstream answer, PAYMENT-RESPONSE, exact on-chain transfer, settled receipt row', async () => {
    const t0 = Date.now();
    let res: Response | undefined;
    const delta = await world.moved(async () => {
      res = await v2Fetch()(`${gw.url}/weather?city=Paris`);
    });
    expect(res?.status).toBe(200);
    expect(await res?.json()).toMatchObject({ method: 'GET', url: '/weather?city=Paris' });
    const receipt = receiptOf(res as Response, 'payment-response');
    expect(receipt).toMatchObject({ success: true, network: 'eip155:8453', payer: PAYER });
    expect(receipt['transaction']).toMatch(/^0x[0-9a-f]{64}$/);
    expect(res?.headers.get('cache-control')).toBe('max-age=60, private');
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    const rows = await receiptsSince(t0);
    expect(rows.map((r) => [r.status, r.amount, r.payer, r.transaction])).toEqual([['settled', '10000', PAYER, receipt['transaction']]]);
  });

  it('pays a POST route and the body reaches the upstream unchanged', async () => {
    const delta = await world.moved(async () => {
      const res = await v2Fetch()(`${gw.url}/v1/echo`, { method: 'POST', body: JSON.stringify({ hello: 'world' }), headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ method: 'POST', bytes: 17 });
    });
    expect(upstream.seen.at(-1)?.body.toString()).toBe('{"hello":"world"}');
    expect(upstream.seen.at(-1)?.headers['payment-signature']).toBeUndefined();
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
  });
});

describe('the official v1 client (x402-fetch)', () => {
  it('pays GET and POST routes with X-PAYMENT and gets X-PAYMENT-RESPONSE', async () => {
    const pay = await v1Fetch();
    const delta = await world.moved(async () => {
      const get = await pay(`${gw.url}/weather?city=Oslo`);
      expect(get.status).toBe(200);
      expect(receiptOf(get, 'x-payment-response')).toMatchObject({ success: true, network: 'base', payer: PAYER });
      const post = await pay(`${gw.url}/v1/echo`, { method: 'POST', body: '{"v":1}', headers: { 'content-type': 'application/json' } });
      expect(post.status).toBe(200);
      expect(receiptOf(post, 'x-payment-response')).toMatchObject({ success: true, network: 'base' });
    });
    expect(upstream.seen.at(-1)?.headers['x-payment']).toBeUndefined();
    expect(delta).toEqual({ payer: -2n * CENT, payee: 2n * CENT });
  });
});

describe('settlement timing', () => {
  it('settlement: after, upstream 500: the 500 passes through, nothing is charged, the authorization can be used again', async () => {
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/after/status/500`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/after/status/500', { headers: header });
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ status: 500 });
      expect(res.headers['payment-response']).toBeUndefined();
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect((await receiptsSince(t0)).map((r) => [r.status, r.reason])).toEqual([['not_charged', 'upstream_status_500']]);
    // Nothing was charged, so the nonce was released: the same authorization pays for a retry.
    const retry = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/after/status/200', { headers: header });
      expect(res.status).toBe(200);
    });
    expect(retry).toEqual({ payer: -CENT, payee: CENT });
  });

  it('settlement: after, an upstream status outside HTTP\'s range: 502, its body not served, nothing charged', async () => {
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/after/status/600`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/after/status/600', { headers: header });
      expect(res.status).toBe(502);
      expect(res.text()).not.toContain('"status":600');
      expect(res.json()).toMatchObject({ code: 'GW_ERR_UPSTREAM_UNAVAILABLE' });
      expect(res.headers['payment-response']).toBeUndefined();
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect((await receiptsSince(t0)).map((r) => r.status)).toEqual(['not_charged']);
  });

  it('settlement: before, upstream 500: charged exactly once, the receipt comes with the 500, and the same header is re-delivered, not charged again', async () => {
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/before/status/500`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/before/status/500', { headers: header });
      expect(res.status).toBe(500);
      expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true });
      // The answer bought was a 500: the caller may present the payment again (a re-delivery).
      const again = await send(gw.url, 'GET', '/before/status/500', { headers: header });
      expect(again.status).toBe(500);
      expect(decodeHeader(again.headers['payment-response'])).toMatchObject({ success: true, transaction: (decodeHeader(res.headers['payment-response']) as { transaction: string }).transaction });
    });
    expect(delta).toEqual({ payer: -2n * CENT, payee: 2n * CENT });
  });

  it('settlement: before, a POST is charged once and forwarded once', async () => {
    const before = upstream.seen.length;
    const delta = await world.moved(async () => {
      const res = await v2Fetch()(`${gw.url}/before/jobs`, { method: 'POST', body: '{"job":1}', headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(200);
      expect(receiptOf(res, 'payment-response')).toMatchObject({ success: true });
    });
    expect(upstream.seen.length - before).toBe(1);
    expect(delta).toEqual({ payer: -2n * CENT, payee: 2n * CENT });
  });

  it('settles before the first body byte without buffering: a paid event stream arrives with its receipt, as events', async () => {
    const before = await world.balances();
    const res = await v2Fetch()(`${gw.url}/sse`);
    expect(res.status).toBe(200);
    // Charged by the time the headers arrive.
    const after = await world.balances();
    expect({ payer: after.payer - before.payer, payee: after.payee - before.payee }).toEqual({ payer: -CENT, payee: CENT });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    // Headers (with the receipt) are written with the first byte: settlement came first.
    expect(receiptOf(res, 'payment-response')).toMatchObject({ success: true });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now());
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('data: tick 2');
    expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThanOrEqual(150);
  });

  it('a settlement that fails after the upstream answered never leaks the upstream body', async () => {
    // The payer's funds leave while the (slow) upstream works: verification passed, settlement cannot.
    const http = v2HttpClient(UNFUNDED_KEY);
    const unfunded = privateKeyToAccount(UNFUNDED_KEY).address;
    await world.admin.writeContract({
      address: BASE_USDC,
      abi: [{ type: 'function', name: 'mint', stateMutability: 'nonpayable', inputs: [{ name: 'to', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [] }],
      functionName: 'mint',
      args: [unfunded, CENT],
    });
    const challenge = await challengeOf(http, `${gw.url}/slow`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const t0 = Date.now();
    const payeeBefore = await world.balance(PAYEE);
    const pending = send(gw.url, 'GET', '/slow', { headers: { ...header, origin: 'https://app.example' } });
    await new Promise((r) => setTimeout(r, 500));
    const { createDevChainClient } = await import('../../src/tools/devchain/anvil.js');
    const drain = createDevChainClient(world.chain, UNFUNDED_KEY);
    await drain.writeContract({
      address: BASE_USDC,
      abi: [{ type: 'function', name: 'transfer', stateMutability: 'nonpayable', inputs: [{ name: 'to', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [{ type: 'bool' }] }],
      functionName: 'transfer',
      args: [PAYER, CENT],
    });
    const res = await pending;
    expect(res.status).toBe(402);
    expect(res.text()).not.toContain('{"slow":true}');
    // The gateway's own answer keeps its CORS headers: a browser can read why it was refused.
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(String(res.headers['access-control-expose-headers'])).toContain('PAYMENT-RESPONSE');
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: false, errorReason: 'invalid_exact_evm_insufficient_balance' });
    expect(await world.balance(unfunded)).toBe(0n);
    expect(await world.balance(PAYEE)).toBe(payeeBefore);
    expect((await receiptsSince(t0)).map((r) => r.status)).toEqual(['settle_failed']);
  });
});

describe('an upstream that is down or too slow', () => {
  let other: RunningGateway;
  beforeAll(async () => {
    other = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl) })}
upstreams:
  api: { url: "${upstream.url}" }
  dead: { url: "${await closedLoopbackUrl()}" }
  sluggish: { url: "${upstream.url}", timeoutMs: 300 }
routes:
  - { match: "GET /weather", price: "$0.01", upstream: api }
  - { match: "GET /dead/after", price: "$0.01", upstream: dead }
  - { match: "GET /dead/before", price: "$0.01", upstream: dead, settlement: before }
  - { match: "GET /slow", price: "$0.01", upstream: sluggish }
`);
  });
  afterAll(async () => {
    await other?.close();
  });

  async function paymentFor(path: string): Promise<Record<string, string>> {
    const http = v2HttpClient();
    return http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${other.url}${path}`)));
  }

  it('settlement: after, upstream unreachable: 502, nothing charged, and the authorization pays for a retry', async () => {
    const header = await paymentFor('/dead/after');
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(other.url, 'GET', '/dead/after', { headers: header });
      expect(res.status).toBe(502);
      expect(res.json()).toMatchObject({ code: 'GW_ERR_UPSTREAM_UNAVAILABLE' });
      expect(res.headers['payment-response']).toBeUndefined();
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    const rows = (await other.ledger.receipts({ since: t0 })).reverse();
    expect(rows.map((r) => [r.status, r.reason])).toEqual([['not_charged', 'upstream_unavailable']]);
    const retry = await world.moved(async () => {
      expect((await send(other.url, 'GET', '/weather', { headers: header })).status).toBe(200);
    });
    expect(retry).toEqual({ payer: -CENT, payee: CENT });
  });

  it('settlement: after, upstream too slow: 504, nothing charged', async () => {
    const header = await paymentFor('/slow');
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(other.url, 'GET', '/slow', { headers: header });
      expect(res.status).toBe(504);
      expect(res.json()).toMatchObject({ code: 'GW_ERR_UPSTREAM_TIMEOUT' });
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    const rows = (await other.ledger.receipts({ since: t0 })).reverse();
    expect(rows.map((r) => [r.status, r.reason])).toEqual([['not_charged', 'upstream_timeout']]);
  });

  it('settlement: before, upstream unreachable: 502, charged once, and the caller keeps its receipt', async () => {
    const header = await paymentFor('/dead/before');
    const delta = await world.moved(async () => {
      const res = await send(other.url, 'GET', '/dead/before', { headers: header });
      expect(res.status).toBe(502);
      expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true, payer: PAYER });
    });
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
  });
});

describe('a settlement still unconfirmed when its receipt wait ends', () => {
  it('answers 402 settlement_pending (no new challenge), serves nothing, keeps the nonce; once mined the reconciler records it and the same header is served, charged once', async () => {
    const waiting = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl, ', receiptTimeoutMs: 300') })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`);
    const test = testActions({ mode: 'anvil' })(world.admin);
    try {
      const http = v2HttpClient();
      const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${waiting.url}/weather`)));
      const before = await world.balances();
      await test.setAutomine(false);
      const res = await send(waiting.url, 'GET', '/weather', { headers: header });
      expect(res.status).toBe(402);
      expect(res.text()).not.toContain('"method":"GET"'); // the upstream's answer is not served
      const receipt = decodeHeader(res.headers['payment-response']) as { success: boolean; errorReason: string; transaction: string };
      expect(receipt).toMatchObject({ success: false, errorReason: 'settlement_pending' });
      expect(receipt.transaction).toMatch(/^0x[0-9a-f]{64}$/);
      expect((await waiting.ledger.receipts({})).map((r) => r.status)).toEqual(['pending']);
      expect(res.headers['payment-required']).toBeUndefined();
      const pendingMetrics = (await send(waiting.adminUrl, 'GET', '/metrics')).text();
      expect(pendingMetrics).toMatch(/^x402_gateway_pending_settlements 1$/m);
      expect(Number(/^x402_gateway_oldest_pending_settlement_seconds (\S+)$/m.exec(pendingMetrics)?.[1])).toBeGreaterThan(0);
      // The same authorization again: its nonce is kept, the transaction may still land; it
      // waits out the settlement wait and hears the same, never a challenge to sign again.
      const early = await send(waiting.url, 'GET', '/weather', { headers: header });
      expect(early.status).toBe(402);
      expect(early.headers['payment-required']).toBeUndefined();
      expect(early.json()).toMatchObject({ error: 'settlement_pending', transaction: receipt.transaction, accepts: [] });
      await test.mine({ blocks: 1 });
      await test.setAutomine(true);
      // The embedded store's reconciler (this process) records the outcome from the chain.
      await waitFor(async () => (await waiting.ledger.receipts({})).some((r) => r.status === 'settled' && r.reason === 'reconciled'), 10_000, 100);
      const settledMetrics = (await send(waiting.adminUrl, 'GET', '/metrics')).text();
      expect(settledMetrics).toMatch(/^x402_gateway_pending_settlements 0$/m);
      expect(settledMetrics).toMatch(/^x402_gateway_oldest_pending_settlement_seconds 0$/m);
      const served = await send(waiting.url, 'GET', '/weather', { headers: header });
      expect(served.status).toBe(200);
      expect(decodeHeader(served.headers['payment-response'])).toMatchObject({ success: true, transaction: receipt.transaction });
      const after = await world.balances();
      expect({ payer: after.payer - before.payer, payee: after.payee - before.payee }).toEqual({ payer: -CENT, payee: CENT });
    } finally {
      await test.setAutomine(true);
      await waiting.close();
    }
  });
});

describe('a caller that hangs up', () => {
  it('while its payment is still being verified is not charged, and its authorization stays usable', async () => {
    // The gateway's chain reads go through a forwarder that holds eth_call for 400 ms, so the
    // caller can hang up while verification is under way.
    const slowRpc = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const delay = body.includes('"eth_call"') ? 400 : 0;
        setTimeout(() => {
          void fetch(world.chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
            .then(async (answer) => {
              res.writeHead(answer.status, { 'content-type': 'application/json' });
              res.end(await answer.text());
            })
            .catch(() => res.destroy());
        }, delay);
      });
    });
    await new Promise<void>((resolve) => slowRpc.listen(0, '127.0.0.1', resolve));
    const slowUrl = `http://127.0.0.1:${(slowRpc.address() as AddressInfo).port}`;
    const slow = await startGateway(`${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(slowUrl) })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`);
    try {
      const http = v2HttpClient();
      const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${slow.url}/weather`)));
      const t0 = Date.now();
      const hungUp = await world.moved(async () => {
        const controller = new AbortController();
        const pending = fetch(`${slow.url}/weather`, { headers: header, signal: controller.signal }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 150));
        controller.abort();
        await pending;
        await waitFor(async () => (await slow.ledger.receipts({ since: t0 })).length > 0);
      });
      expect(hungUp).toEqual({ payer: 0n, payee: 0n });
      expect((await slow.ledger.receipts({ since: t0 })).map((r) => [r.status, r.reason])).toEqual([['not_charged', 'client_closed']]);
      const retry = await world.moved(async () => {
        expect((await send(slow.url, 'GET', '/weather', { headers: header })).status).toBe(200);
      });
      expect(retry).toEqual({ payer: -CENT, payee: CENT });
    } finally {
      await slow.close();
      slowRpc.closeAllConnections();
      await new Promise((r) => slowRpc.close(r));
    }
  });

  it('after its request was forwarded is charged once when the upstream answers < 400; the same header is re-delivered once, not charged again', async () => {
    // The upstream did the work: hanging up must not make it free. The caller never got the
    // answer, so the same header is served again (bounded by limits.redeliveries), free.
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/slow`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const t0 = Date.now();
    const before = upstream.seen.length;
    const delta = await world.moved(async () => {
      const controller = new AbortController();
      const aborted = fetch(`${gw.url}/slow`, { headers: header, signal: controller.signal }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 300));
      controller.abort();
      expect(await aborted).toBe('aborted');
      // The upstream answers after 2 s; the settlement follows its status line.
      await waitFor(async () => (await receiptsSince(t0)).some((r) => r.status === 'settled'), 10_000);
    });
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    // The row says the answer was not delivered.
    expect((await receiptsSince(t0)).map((r) => [r.status, r.reason])).toEqual([['settled', 'client_closed']]);
    const replay = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/slow', { headers: header });
      expect(res.status).toBe(200);
      expect(decodeHeader(res.headers['payment-response'] as string)).toMatchObject({ success: true });
      // Delivered whole this time: from now on it is a replay.
      const spent = await send(gw.url, 'GET', '/slow', { headers: header });
      expect(spent.status).toBe(402);
      expect(decodeHeader(spent.headers['payment-required'] as string)).toMatchObject({ error: 'invalid_exact_evm_nonce_already_used' });
    });
    expect(replay).toEqual({ payer: 0n, payee: 0n });
    expect(upstream.seen.length - before).toBe(2);
  });
});

describe('replay', () => {
  it('one authorization sent 5 times at once is forwarded once and charged once; a replay later is refused', async () => {
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/weather?city=Rome`);
    const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
    const before = upstream.seen.length;
    let statuses: number[] = [];
    const delta = await world.moved(async () => {
      const all = await Promise.all(Array.from({ length: 5 }, () => send(gw.url, 'GET', '/weather?city=Rome', { headers: header })));
      statuses = all.map((r) => r.status).sort();
      for (const r of all.filter((x) => x.status === 402)) {
        expect((decodeHeader(r.headers['payment-required']) as { error: string }).error).toBe('invalid_exact_evm_nonce_already_used');
      }
    });
    expect(statuses).toEqual([200, 402, 402, 402, 402]);
    expect(upstream.seen.length - before).toBe(1);
    expect(delta).toEqual({ payer: -CENT, payee: CENT });
    const later = await send(gw.url, 'GET', '/weather?city=Rome', { headers: header });
    expect(later.status).toBe(402);
    expect(upstream.seen.length - before).toBe(1);
  });
});

describe('refused payments: each with its reason, nothing charged, nothing forwarded, a row each', () => {
  type Tamper = (accepted: PaymentRequirements) => PaymentRequirements;

  /** Signs a payment for a tampered requirement, then (optionally) echoes the genuine one as `accepted`. */
  async function tamperedHeader(tamper: Tamper, restoreAccepted: boolean, key: Hex = PAYER_KEY): Promise<Record<string, string>> {
    const http = v2HttpClient(key);
    const challenge = await challengeOf(http, `${gw.url}/weather`);
    const genuine = challenge.accepts[0] as PaymentRequirements;
    const payload: PaymentPayload = await http.createPaymentPayload({ ...challenge, accepts: [tamper(genuine)] });
    return http.encodePaymentSignatureHeader(restoreAccepted ? { ...payload, accepted: genuine } : payload);
  }

  /**
   * `kept`: the refusal came after the payer's signature checked out, so it has a row; junk
   * before that (anyone could have sent it) is only counted in the metrics.
   */
  async function expectRefused(headers: Record<string, string>, status: number, reason: string, kept: boolean): Promise<void> {
    const counted = await refusalsCounted(reason);
    const before = upstream.seen.length;
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/weather', { headers });
      expect(res.status).toBe(status);
      if (status === 402) {
        expect((decodeHeader(res.headers['payment-required']) as { error: string }).error).toBe(reason);
        expect((res.json() as { error: string }).error).toBe(reason);
      } else {
        expect(res.json()).toMatchObject({ code: 'GW_ERR_PAYMENT_MALFORMED' });
      }
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect(upstream.seen.length - before).toBe(0);
    const rows = await receiptsSince(t0);
    expect(rows.map((r) => [r.status, r.reason])).toEqual(kept ? [['refused', reason]] : []);
    expect(await refusalsCounted(reason)).toBe(counted + 1);
  }

  async function refusalsCounted(reason: string): Promise<number> {
    const { values } = await gw.metrics.verificationFailures.get();
    return values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
  }

  it('wrong amount', async () => {
    await expectRefused(await tamperedHeader((r) => ({ ...r, amount: '5000' }), true), 402, 'invalid_exact_evm_payload_authorization_value_mismatch', true);
  });

  it('an echoed requirement that is not ours', async () => {
    await expectRefused(await tamperedHeader((r) => ({ ...r, amount: '5000' }), false), 402, 'no_matching_requirements', false);
  });

  it('wrong payTo', async () => {
    await expectRefused(await tamperedHeader((r) => ({ ...r, payTo: PAYER }), true), 402, 'invalid_exact_evm_recipient_mismatch', true);
  });

  it('wrong network', async () => {
    // Base Sepolia's USDC, so the client's spend controls let it sign.
    const sepolia: Tamper = (r) => ({ ...r, network: 'eip155:84532', asset: '0x036CbD53842c5426634e7929541eC2318f3dCF7e', extra: { name: 'USDC', version: '2' } });
    await expectRefused(await tamperedHeader(sepolia, false), 402, 'invalid_network', false);
  });

  it('expired', async () => {
    // The client sets validBefore = now + maxTimeoutSeconds: 1 s is inside the 6-second grace.
    await expectRefused(await tamperedHeader((r) => ({ ...r, maxTimeoutSeconds: 1 }), true), 402, 'invalid_exact_evm_payload_authorization_valid_before', false);
  });

  it('valid now, but not long enough to outlive the upstream and its settlement (settlement: after)', async () => {
    // validBefore = now + 40 s passes verification (now + 6) but not the upstream's 30 s timeout plus the settlement margin.
    await expectRefused(await tamperedHeader((r) => ({ ...r, maxTimeoutSeconds: 40 }), true), 402, 'invalid_exact_evm_payload_authorization_valid_before', false);
  });

  it('not yet valid', async () => {
    const http = v2HttpClient();
    const challenge = await challengeOf(http, `${gw.url}/weather`);
    const accepted = challenge.accepts[0] as PaymentRequirements;
    const now = BigInt(Math.floor(Date.now() / 1000));
    const authorization = { from: PAYER, to: PAYEE, value: CENT, validAfter: now + 3600n, validBefore: now + 7200n, nonce: `0x${'ab'.repeat(32)}` as const };
    const signature = await privateKeyToAccount(PAYER_KEY).signTypedData({
      domain: { name: 'USD Coin', version: '2', chainId: 8453, verifyingContract: BASE_USDC },
      types: authorizationTypes,
      primaryType: 'TransferWithAuthorization',
      message: authorization,
    });
    const payload = {
      x402Version: 2,
      resource: challenge.resource,
      accepted,
      payload: {
        signature,
        authorization: { ...authorization, value: String(authorization.value), validAfter: String(authorization.validAfter), validBefore: String(authorization.validBefore) },
      },
    };
    await expectRefused({ 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload as PaymentPayload) }, 402, 'invalid_exact_evm_payload_authorization_valid_after', true);
  });

  it('tampered signature', async () => {
    const headers = await tamperedHeader((r) => r, false);
    const payload = decodeHeader(headers['PAYMENT-SIGNATURE']) as { payload: { signature: string } };
    const sig = payload.payload.signature;
    payload.payload.signature = sig.slice(0, 10) + (sig[10] === 'a' ? 'b' : 'a') + sig.slice(11);
    await expectRefused({ 'PAYMENT-SIGNATURE': Buffer.from(JSON.stringify(payload)).toString('base64') }, 402, 'invalid_exact_evm_signature', false);
  });

  it('unfunded payer', async () => {
    await expectRefused(await tamperedHeader((r) => r, false, UNFUNDED_KEY), 402, 'invalid_exact_evm_insufficient_balance', true);
  });

  it.each([
    ['not base64', '!!!', 'invalid_base64'],
    ['URL-safe base64', Buffer.from('{"x402Version":2}').toString('base64url') + '-_', 'invalid_base64'],
    ['JSON that is not a payment', Buffer.from('{"x402Version":2}').toString('base64'), 'invalid_payload'],
    ['an unknown version', Buffer.from('{"x402Version":3}').toString('base64'), 'invalid_x402_version'],
  ])('garbage header: %s', async (_name, value, reason) => {
    await expectRefused({ 'payment-signature': value }, 400, reason, false);
  });
});

describe('a dead RPC', () => {
  it('gives 503 with Retry-After, never free access, and charges nothing', async () => {
    const dead = await startGateway(gatewayYaml('http://127.0.0.1:1'));
    try {
      const http = v2HttpClient();
      const challenge = await challengeOf(http, `${dead.url}/weather`);
      const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
      const before = upstream.seen.length;
      const delta = await world.moved(async () => {
        const res = await send(dead.url, 'GET', '/weather', { headers: header });
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toBe('5');
        expect(res.json()).toMatchObject({ statusCode: 503, code: 'GW_ERR_CHAIN_UNAVAILABLE' });
      });
      expect(upstream.seen.length - before).toBe(0);
      expect(delta).toEqual({ payer: 0n, payee: 0n });
      // Counted for the RPC-unavailable alert (deploy/prometheus/alerts.yaml).
      const { values } = await dead.metrics.infrastructureErrors.get();
      expect(values).toEqual([{ labels: { code: 'GW_ERR_CHAIN_UNAVAILABLE' }, value: 1 }]);
    } finally {
      await dead.close();
    }
  });
});

describe('metrics of paid traffic', () => {
  async function value(metric: { get(): Promise<{ values: { labels: Record<string, string | number>; value: number; metricName?: string }[] }> }, labels: Record<string, string>, name?: string): Promise<number> {
    const { values } = await metric.get();
    return values.filter((v) => (name === undefined || v.metricName === name) && Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0);
  }

  it('counts revenue by route, asset and network, settlements by outcome and mode, and their latency', async () => {
    const m = gw.metrics;
    const labels = { route: 'GET /weather', asset: 'usdc@base', network: 'eip155:8453' };
    const revenue = await value(m.revenue, labels);
    const settled = await value(m.settlements, { outcome: 'settled', mode: 'local' });
    const observed = await value(m.settlementSeconds, { mode: 'local' }, 'x402_gateway_settlement_duration_seconds_count');
    const paid = await value(m.requests, { route: 'GET /weather', outcome: 'paid' });
    const badSignatures = await value(m.verificationFailures, { reason: 'invalid_exact_evm_signature' });
    const delta = await world.moved(async () => {
      expect((await v2Fetch()(`${gw.url}/weather`)).status).toBe(200);
      expect((await v2Fetch()(`${gw.url}/weather`)).status).toBe(200);
    });
    expect(delta).toEqual({ payer: -2n * CENT, payee: 2n * CENT });
    // And one payment whose signature was tampered with: refused, counted by its reason.
    const http = v2HttpClient();
    const genuine = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${gw.url}/weather`)));
    const tampered = decodeHeader(genuine['PAYMENT-SIGNATURE']) as { payload: { signature: string } };
    const sig = tampered.payload.signature;
    tampered.payload.signature = sig.slice(0, 10) + (sig[10] === 'a' ? 'b' : 'a') + sig.slice(11);
    const refused = await send(gw.url, 'GET', '/weather', { headers: { 'PAYMENT-SIGNATURE': Buffer.from(JSON.stringify(tampered)).toString('base64') } });
    expect(refused.status).toBe(402);
    expect(await value(m.revenue, labels)).toBe(revenue + 20_000);
    expect(await value(m.settlements, { outcome: 'settled', mode: 'local' })).toBe(settled + 2);
    expect(await value(m.settlementSeconds, { mode: 'local' }, 'x402_gateway_settlement_duration_seconds_count')).toBe(observed + 2);
    expect(await value(m.requests, { route: 'GET /weather', outcome: 'paid' })).toBe(paid + 2);
    expect(await value(m.verificationFailures, { reason: 'invalid_exact_evm_signature' })).toBe(badSignatures + 1);
  });
});

describe('x402-gateway pay', () => {
  it('pays within --max and refuses to pay more', async () => {
    const { runCli } = await import('../../src/cli.js');
    const lines: string[] = [];
    const io = { env: {}, out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), onSignal: () => {} };
    const refused = await world.moved(async () => {
      expect(await runCli(['pay', `${gw.url}/weather`, '--max', '$0.005', '--key', PAYER_KEY], io)).toBe(1);
    });
    expect(refused).toEqual({ payer: 0n, payee: 0n });
    expect(lines.join('\n')).toContain('payment not made');
    lines.length = 0;
    const paid = await world.moved(async () => {
      expect(await runCli(['pay', `${gw.url}/weather?city=Lima`, '--max', '$0.01', '--key', PAYER_KEY], io)).toBe(0);
    });
    expect(paid).toEqual({ payer: -CENT, payee: CENT });
    expect(lines[0]).toBe('status: 200');
    expect(lines[1]).toMatch(/^receipt: \{"success":true/);
  });
});
