/**
 * The facilitator client, verifier and settler with a CDP key, over real sockets: a CDP-checking
 * facilitator (test/helpers/cdp-facilitator.ts) in front of fake ones. Every call carries a
 * fresh token naming that very call; a refused key is `auth_refused` (never a verdict on the
 * payment), falls back like an unreachable facilitator, and ends as GW_ERR_FACILITATOR_AUTH /
 * `facilitator_auth_refused` when nothing else answers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FacilitatorConfig } from '../../src/config/types.js';
import { InfrastructureError } from '../../src/errors.js';
import { FacilitatorClient, createFacilitatorDispatcher } from '../../src/payments/facilitator/client.js';
import { FacilitatorSettler } from '../../src/payments/facilitator/settler.js';
import { checkFacilitatorSupport, credentialRefusals } from '../../src/payments/facilitator/support.js';
import { FacilitatorVerifier } from '../../src/payments/facilitator/verifier.js';
import { GATEWAY_REASON, REASON } from '../../src/protocol/reasons.js';
import { ed25519CdpKey, p256CdpKey, startCdpFacilitator, type CdpFacilitator } from '../helpers/cdp-facilitator.js';
import { startFakeFacilitator, type FakeFacilitator } from '../helpers/facilitator.js';
import { makeOption, makePayment, PAYMENT_CONTEXT } from '../helpers/options.js';

const PAY_TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const TX = `0x${'cd'.repeat(32)}` as const;
const option = makeOption({ payTo: PAY_TO });
const payment = makePayment({ x402Version: 2, option });

const ED = ed25519CdpKey();
const EC = p256CdpKey();
const dispatcher = createFacilitatorDispatcher();
let real: FakeFacilitator;
let cdp: CdpFacilitator;

function client(url: string, key = ED, extra: Partial<FacilitatorConfig> = {}): FacilitatorClient {
  return new FacilitatorClient({ url, headers: {}, timeoutMs: 500, cdp: { apiKeyId: key.id, apiKeySecret: key.secret }, ...extra }, { dispatcher });
}

beforeAll(async () => {
  real = await startFakeFacilitator();
  cdp = await startCdpFacilitator({ forwardTo: real.url, keys: [ED, EC] });
});
afterEach(() => {
  real.answer(() => ({ status: 404 }));
  cdp.restore();
});
afterAll(async () => {
  await Promise.all([real.close(), cdp.close()]);
  await dispatcher.close();
});

describe('every call carries a token made for it', () => {
  it.each([
    ['Ed25519', ED],
    ['P-256', EC],
  ] as const)('%s: /verify, /settle and /supported each pass the CDP checks, each with a token of its own', async (_name, key) => {
    real.answer((req) =>
      req.path === '/supported'
        ? { status: 200, body: { kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:8453' }] } }
        : req.path === '/verify'
          ? { status: 200, body: { isValid: true } }
          : { status: 200, body: { success: true, transaction: TX, network: 'eip155:8453' } },
    );
    const from = cdp.calls.length;
    const c = client(cdp.url, key);
    expect((await c.supported()).kind).toBe('answer');
    expect(await new FacilitatorVerifier([c]).verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: true });
    expect(await new FacilitatorSettler([c]).settle(payment, option, PAYMENT_CONTEXT)).toMatchObject({ success: true, transaction: TX });
    const calls = cdp.calls.slice(from);
    expect(calls.map((x) => [x.method, x.path, x.refused])).toEqual([
      ['GET', '/platform/v2/x402/supported', undefined],
      ['POST', '/platform/v2/x402/verify', undefined],
      ['POST', '/platform/v2/x402/settle', undefined],
    ]);
    expect(new Set(calls.map((x) => x.token)).size).toBe(3);
    expect(real.requests.slice(-3).map((r) => r.path)).toEqual(['/supported', '/verify', '/settle']);
  });

  it('the CDP checker refuses a token sent again, and one sent to another call than it names', async () => {
    real.answer(() => ({ status: 200, body: { kinds: [] } }));
    await client(cdp.url).supported();
    const token = cdp.calls.at(-1)?.token ?? '';
    const again = await fetch(`${cdp.url}/supported`, { headers: { authorization: `Bearer ${token}` } });
    expect([again.status, cdp.calls.at(-1)?.refused]).toEqual([401, 'nonce used before']);
    const elsewhere = await fetch(`${cdp.url}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' });
    expect(elsewhere.status).toBe(401);
    expect(cdp.calls.at(-1)?.refused).toMatch(/^uris \["GET 127\.0\.0\.1:\d+\/platform\/v2\/x402\/supported"\] is not \["POST 127\.0\.0\.1:\d+\/platform\/v2\/x402\/verify"\]$/);
  });

  it('a key CDP does not know is refused: auth_refused with the key id, not received, no secret in the message', async () => {
    const stranger = ed25519CdpKey('organizations/o/apiKeys/unknown');
    const outcome = await client(cdp.url, stranger).supported();
    expect(outcome.kind).toBe('unavailable');
    if (outcome.kind !== 'unavailable') return;
    expect(outcome.failure).toMatchObject({ kind: 'auth_refused', status: 401, mayHaveReceived: false, keyId: stranger.id });
    expect(outcome.failure.message).toBe(`GET /supported to ${new URL(cdp.url).origin} answered 401: the facilitator refused CDP API key "${stranger.id}"`);
    expect(JSON.stringify(outcome.failure)).not.toContain(stranger.secret.slice(0, 20));
    expect(cdp.calls.at(-1)?.refused).toBe('unknown kid');
  });

  it('a 403 that carries a verdict is the verdict, as the official client reads it', async () => {
    real.answer(() => ({ status: 200, body: {} }));
    const fake = await startFakeFacilitator(() => ({ status: 403, body: { isValid: false, invalidReason: REASON.signature } }));
    try {
      expect(await new FacilitatorVerifier([client(fake.url)]).verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: false, reason: REASON.signature });
    } finally {
      await fake.close();
    }
  });

  it('without a cdp key, a 401 is auth_refused too, saying the facilitator wants credentials; no Authorization is sent', async () => {
    const fake = await startFakeFacilitator(() => ({ status: 401, body: { errorType: 'unauthorized' } }));
    try {
      const c = new FacilitatorClient({ url: fake.url, headers: {}, timeoutMs: 500 }, { dispatcher });
      const outcome = await c.supported();
      expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'auth_refused', status: 401, mayHaveReceived: false });
      expect(outcome.kind === 'unavailable' && outcome.failure.message).toMatch(/wants credentials the gateway does not send \(a CDP facilitator needs a cdp block\)$/);
      expect(fake.requests.at(-1)?.headers.authorization).toBeUndefined();
    } finally {
      await fake.close();
    }
  });
});

describe('a refused key in the verifier and the settler', () => {
  it('falls back to the next facilitator, for verify and for settle', async () => {
    cdp.revoke(ED.id);
    const next = await startFakeFacilitator((req) =>
      req.path === '/verify' ? { status: 200, body: { isValid: true } } : { status: 200, body: { success: true, transaction: TX } },
    );
    try {
      const list = [client(cdp.url), client(next.url)];
      expect(await new FacilitatorVerifier(list).verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: true });
      expect(await new FacilitatorSettler(list).settle(payment, option, PAYMENT_CONTEXT)).toMatchObject({ success: true, transaction: TX });
      expect(next.requests.map((r) => r.path)).toEqual(['/verify', '/settle']);
    } finally {
      await next.close();
    }
  });

  it('none else answers: verify throws GW_ERR_FACILITATOR_AUTH; settle fails facilitator_auth_refused, nothing on chain', async () => {
    cdp.revoke(ED.id);
    real.answer(() => ({ status: 200, body: { isValid: true } }));
    const from = real.requests.length;
    const error = await new FacilitatorVerifier([client(cdp.url)]).verify(payment, option, PAYMENT_CONTEXT).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InfrastructureError);
    expect(error).toMatchObject({ code: 'GW_ERR_FACILITATOR_AUTH', message: expect.stringContaining(`refused CDP API key "${ED.id}"`) });
    expect(await new FacilitatorSettler([client(cdp.url)]).settle(payment, option, PAYMENT_CONTEXT)).toMatchObject({
      success: false,
      reason: GATEWAY_REASON.facilitatorAuthRefused,
      maybeOnChain: false,
    });
    expect(real.requests.length).toBe(from);
  });

  it('after a facilitator that may have received the settle, doubt decides: unexpected_settle_error, maybe on chain', async () => {
    cdp.revoke(ED.id);
    const hanging = await startFakeFacilitator(() => ({ status: 200, hang: true }));
    try {
      const result = await new FacilitatorSettler([client(hanging.url, ED, { timeoutMs: 200 }), client(cdp.url)]).settle(payment, option, PAYMENT_CONTEXT);
      expect(result).toMatchObject({ success: false, reason: REASON.unexpectedSettleError, maybeOnChain: true });
    } finally {
      await hanging.close();
    }
  });

  it('a key refused for /settle only: verify passes, settle fails as refused', async () => {
    cdp.revoke(EC.id, ['settle']);
    real.answer(() => ({ status: 200, body: { isValid: true } }));
    expect(await new FacilitatorVerifier([client(cdp.url, EC)]).verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: true });
    expect(await new FacilitatorSettler([client(cdp.url, EC)]).settle(payment, option, PAYMENT_CONTEXT)).toMatchObject({
      reason: GATEWAY_REASON.facilitatorAuthRefused,
      maybeOnChain: false,
    });
  });
});

describe('the start-up check', () => {
  it('reports a refused key, and credentialRefusals names network, facilitator and key id', async () => {
    cdp.revoke(ED.id);
    const reports = await checkFacilitatorSupport([client(cdp.url)], []);
    expect(reports).toEqual([{ url: new URL(cdp.url).origin, reachable: false, authRefused: true, keyId: ED.id, message: expect.stringContaining('answered 401') }]);
    expect(credentialRefusals([{ network: 'base', reports }])).toEqual([
      `network "base": the facilitator at ${new URL(cdp.url).origin} refused CDP API key "${ED.id}" (check CDP_API_KEY_ID / CDP_API_KEY_SECRET, and that the key is enabled)`,
    ]);
  });
});
