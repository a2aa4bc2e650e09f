/**
 * The facilitator HTTP client against a fake facilitator on a real socket: which answers count as
 * answers, which as "unavailable", and what goes over the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FacilitatorConfig } from '../../src/config/types.js';
import {
  FACILITATOR_MAX_REDIRECTS,
  FacilitatorClient,
  MAX_FACILITATOR_RESPONSE_BYTES,
  createFacilitatorDispatcher,
  type FacilitatorRequestBody,
} from '../../src/payments/facilitator/client.js';
import { startFakeFacilitator, type FakeFacilitator } from '../helpers/facilitator.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';

const TX = `0x${'ab'.repeat(32)}`;

const body: FacilitatorRequestBody = {
  x402Version: 2,
  paymentPayload: { x402Version: 2, payload: { signature: '0x01' } },
  paymentRequirements: {
    scheme: 'exact',
    network: 'eip155:8453',
    amount: '10000',
    asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
    payTo: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    maxTimeoutSeconds: 300,
    extra: { name: 'USD Coin', version: '2' },
  },
};

let fake: FakeFacilitator;
const dispatcher = createFacilitatorDispatcher();

function client(overrides: Partial<FacilitatorConfig> = {}): FacilitatorClient {
  return new FacilitatorClient({ url: fake.url, headers: {}, timeoutMs: 5_000, ...overrides }, { dispatcher });
}

beforeAll(async () => {
  fake = await startFakeFacilitator();
});
afterAll(async () => {
  await fake.close();
  await dispatcher.close();
});

describe('verify', () => {
  it('posts the body as JSON with the configured headers and reads a valid answer', async () => {
    fake.answer(() => ({ status: 200, body: { isValid: true, payer: '0xabc' } }));
    const before = fake.requests.length;
    const outcome = await client({ headers: { Authorization: 'Bearer s3cret', 'X-Api-Key': 'k' } }).verify(body);
    expect(outcome).toEqual({ kind: 'answer', status: 200, answer: { isValid: true, payer: '0xabc' } });
    const req = fake.requests[before];
    expect(req?.method).toBe('POST');
    expect(req?.path).toBe('/verify');
    expect(req?.body).toEqual(body);
    expect(req?.headers['authorization']).toBe('Bearer s3cret');
    expect(req?.headers['x-api-key']).toBe('k');
    expect(req?.headers['content-type']).toBe('application/json');
  });

  it('sends the configured headers on every call, /supported included', async () => {
    fake.answer(() => ({ status: 200, body: { kinds: [] } }));
    const before = fake.requests.length;
    await client({ headers: { 'x-api-key': 'k' } }).supported();
    expect(fake.requests[before]?.headers['x-api-key']).toBe('k');
    expect(fake.requests[before]?.method).toBe('GET');
  });

  it('strips trailing slashes from the base URL and keeps its path', async () => {
    fake.answer(() => ({ status: 200, body: { isValid: true } }));
    const before = fake.requests.length;
    await client({ url: `${fake.url}/facilitator//` }).verify(body);
    expect(fake.requests[before]?.path).toBe('/facilitator/verify');
  });

  it('keeps a query string in the URL a query string, and the path, query and an echoing body out of messages', async () => {
    fake.answer((req) => ({ status: 503, body: `Cannot POST ${req.path}` }));
    const before = fake.requests.length;
    const outcome = await client({ url: `${fake.url}/fac-k3y/?key=s3cret` }).verify(body);
    expect(fake.requests[before]?.path).toBe('/fac-k3y/verify?key=s3cret');
    expect(outcome.kind === 'unavailable' && outcome.failure.url).toBe(fake.url);
    expect(outcome.kind === 'unavailable' && outcome.failure.message).toMatch(/^POST \/verify to http:\/\/127\.0\.0\.1:\d+ answered 503 with a body of \d+ bytes of application\/json that is not an answer$/);
    expect(JSON.stringify(outcome)).not.toMatch(/s3cret|k3y/);
  });

  it.each([200, 400, 402, 422])('reads %i {isValid:false} as a refusal', async (status) => {
    fake.answer(() => ({
      status,
      body: { isValid: false, invalidReason: 'invalid_exact_evm_signature', invalidMessage: 'bad sig', payer: '0xabc' },
    }));
    expect(await client().verify(body)).toEqual({
      kind: 'answer',
      status,
      answer: { isValid: false, invalidReason: 'invalid_exact_evm_signature', invalidMessage: 'bad sig', payer: '0xabc' },
    });
  });

  it('treats null optional fields as absent and fills in a missing reason', async () => {
    fake.answer(() => ({ status: 200, body: { isValid: false, invalidReason: null, invalidMessage: null, payer: null } }));
    expect(await client().verify(body)).toEqual({ kind: 'answer', status: 200, answer: { isValid: false, invalidReason: 'invalid_payment' } });
  });

  it('truncates a huge reason', async () => {
    fake.answer(() => ({ status: 200, body: { isValid: false, invalidReason: 'x'.repeat(10_000) } }));
    const outcome = await client().verify(body);
    expect(outcome.kind === 'answer' && !outcome.answer.isValid && outcome.answer.invalidReason.length).toBe(128);
  });

  it.each([
    ['a 500', { status: 500, body: { isValid: false, invalidReason: 'oops' } }, 'http_status', true],
    ['a 503 with HTML', { status: 503, body: '<html>down</html>' }, 'http_status', true],
    ['a 400 without isValid', { status: 400, body: { error: 'Missing paymentPayload' } }, 'http_status', false],
    // The facilitator turned the gateway away: reported as such (GW_ERR_FACILITATOR_AUTH above).
    ['a 401', { status: 401, body: { error: 'unauthorized' } }, 'auth_refused', false],
    ['a 403 without isValid', { status: 403, body: { error: 'forbidden' } }, 'auth_refused', false],
    ['a 400 claiming valid', { status: 400, body: { isValid: true } }, 'http_status', false],
    ['malformed JSON in a 200', { status: 200, body: '{"isValid": tru' }, 'malformed', true],
    ['an empty 200', { status: 200, body: '' }, 'malformed', true],
    ['isValid as a string', { status: 200, body: { isValid: 'true' } }, 'malformed', true],
    ['a JSON array', { status: 200, body: [{ isValid: true }] }, 'malformed', true],
    ['a non-string reason', { status: 200, body: { isValid: false, invalidReason: 42 } }, 'malformed', true],
  ] as const)('never reads %s as an answer', async (_name, answer, kind, mayHaveReceived) => {
    fake.answer(() => answer);
    const outcome = await client().verify(body);
    expect(outcome.kind).toBe('unavailable');
    if (outcome.kind !== 'unavailable') return;
    expect(outcome.failure.kind).toBe(kind);
    expect(outcome.failure.mayHaveReceived).toBe(mayHaveReceived);
    expect(outcome.failure.status).toBe(answer.status);
    expect(outcome.failure.url).toBe(fake.url);
  });

  it('times out a facilitator that never answers, within the configured budget', async () => {
    fake.answer(() => ({ status: 200, hang: true }));
    const started = Date.now();
    const outcome = await client({ timeoutMs: 200 }).verify(body);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'timeout', mayHaveReceived: true });
  });

  it('times out a body that stalls after the headers: the budget covers the whole exchange', async () => {
    fake.answer(() => ({ status: 200, stallBody: true }));
    const started = Date.now();
    const outcome = await client({ timeoutMs: 200 }).verify(body);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'timeout', mayHaveReceived: true });
  });

  it('follows a 308, resending the POST body and headers', async () => {
    const before = fake.requests.length;
    fake.answer((req) =>
      req.path === '/verify'
        ? { status: 308, headers: { location: '/v2/verify' } }
        : { status: 200, body: { isValid: true } },
    );
    const outcome = await client({ headers: { 'x-api-key': 'k' } }).verify(body);
    expect(outcome).toEqual({ kind: 'answer', status: 200, answer: { isValid: true } });
    const [first, second] = fake.requests.slice(before);
    expect(first?.path).toBe('/verify');
    expect(second?.path).toBe('/v2/verify');
    expect(second?.method).toBe('POST');
    expect(second?.body).toEqual(body);
    expect(second?.headers['x-api-key']).toBe('k');
  });

  it('gives up after too many redirects', async () => {
    let hop = 0;
    const before = fake.requests.length;
    fake.answer(() => ({ status: 308, headers: { location: `/hop${++hop}` } }));
    const outcome = await client().verify(body);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'http_status', status: 308 });
    expect(fake.requests.length - before).toBe(1 + FACILITATOR_MAX_REDIRECTS);
  });

  it('does not turn a 302 into an answer: undici makes the POST a GET, which a facilitator refuses', async () => {
    const before = fake.requests.length;
    fake.answer((req) =>
      req.path === '/verify' ? { status: 302, headers: { location: '/elsewhere' } } : { status: 405, body: { error: 'method' } },
    );
    const outcome = await client().verify(body);
    expect(fake.requests[before + 1]?.method).toBe('GET');
    expect(outcome.kind).toBe('unavailable');
  });

  it('reports a closed port as unreachable and not received', async () => {
    const url = await closedLoopbackUrl();
    const outcome = await client({ url }).verify(body);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'unreachable', mayHaveReceived: false });
  });

  it('refuses a response body over the size limit', async () => {
    fake.answer(() => ({ status: 200, body: { isValid: true, pad: 'x'.repeat(MAX_FACILITATOR_RESPONSE_BYTES) } }));
    const outcome = await client().verify(body);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'malformed', mayHaveReceived: true });
  });
});

describe('settle', () => {
  it('reads a success with its transaction', async () => {
    fake.answer(() => ({ status: 200, body: { success: true, transaction: TX, network: 'eip155:8453', payer: '0xabc' } }));
    const before = fake.requests.length;
    expect(await client().settle(body)).toEqual({
      kind: 'answer',
      status: 200,
      answer: { success: true, transaction: TX, network: 'eip155:8453', payer: '0xabc' },
    });
    expect(fake.requests[before]?.path).toBe('/settle');
  });

  it.each([
    ['no transaction', { success: true, network: 'eip155:8453' }],
    ['an empty transaction', { success: true, transaction: '', network: 'eip155:8453' }],
    ['a short transaction', { success: true, transaction: '0xabc', network: 'eip155:8453' }],
    ['success as a string', { success: 'true', transaction: TX }],
  ])('never reads a 200 success with %s as success', async (_name, answer) => {
    fake.answer(() => ({ status: 200, body: answer }));
    const outcome = await client().settle(body);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'malformed', mayHaveReceived: true });
  });

  it.each([200, 400])('reads %i {success:false} as a failure answer', async (status) => {
    fake.answer(() => ({
      status,
      body: { success: false, errorReason: 'invalid_exact_evm_nonce_already_used', transaction: '', network: 'eip155:8453' },
    }));
    expect(await client().settle(body)).toEqual({
      kind: 'answer',
      status,
      answer: { success: false, errorReason: 'invalid_exact_evm_nonce_already_used', transaction: '', network: 'eip155:8453' },
    });
  });

  it('reads a 500 {success:false} as unavailable, possibly received', async () => {
    fake.answer(() => ({ status: 500, body: { success: false, errorReason: 'unexpected_settle_error', transaction: '' } }));
    const outcome = await client().settle(body);
    expect(outcome.kind === 'unavailable' && outcome.failure).toMatchObject({ kind: 'http_status', mayHaveReceived: true });
  });
});

describe('supported', () => {
  it('reads the v2 answer', async () => {
    const kinds = [
      { x402Version: 2, scheme: 'exact', network: 'eip155:8453' },
      { x402Version: 1, scheme: 'exact', network: 'base', extra: { a: 1 } },
    ];
    fake.answer(() => ({ status: 200, body: { kinds, extensions: ['bazaar'], signers: { 'eip155:*': ['0xabc'] } } }));
    expect(await client().supported()).toEqual({
      kind: 'answer',
      status: 200,
      answer: { kinds, extensions: ['bazaar'], signers: { 'eip155:*': ['0xabc'] } },
    });
  });

  it('defaults extensions and signers for a v1-era answer', async () => {
    fake.answer(() => ({ status: 200, body: { kinds: [{ x402Version: 1, scheme: 'exact', network: 'base' }] } }));
    const outcome = await client().supported();
    expect(outcome.kind === 'answer' && outcome.answer).toEqual({
      kinds: [{ x402Version: 1, scheme: 'exact', network: 'base' }],
      extensions: [],
      signers: {},
    });
  });

  it.each([
    { kinds: 'all' },
    { kinds: [{ x402Version: '2', scheme: 'exact', network: 'base' }] },
    { kinds: [], signers: { 'eip155:*': '0xabc' } },
  ])('refuses a malformed list %#', async (answer) => {
    fake.answer(() => ({ status: 200, body: answer }));
    expect((await client().supported()).kind).toBe('unavailable');
  });
});

it('makes and closes its own dispatcher when none is given', async () => {
  fake.answer(() => ({ status: 200, body: { isValid: true } }));
  const own = new FacilitatorClient({ url: fake.url, headers: {}, timeoutMs: 5_000 });
  expect((await own.verify(body)).kind).toBe('answer');
  await own.close();
});
