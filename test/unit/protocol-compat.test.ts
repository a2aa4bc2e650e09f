/**
 * Our wire format against the REAL official code, offline (signing needs no chain):
 * v2 `@x402/core` + `@x402/evm` + `@x402/fetch` 2.27, and v1 `x402` + `x402-fetch` 1.2.0.
 * Transport tests hand the official fetch wrappers a fake `fetch` that answers our 402 and
 * records the paid retry, so the whole client flow runs exactly as against a real gateway.
 */
import { authorizationTypes } from '@x402/evm';
import { x402Client, x402HTTPClient } from '@x402/core/client';
import { decodePaymentSignatureHeader } from '@x402/core/http';
import { PaymentRequiredV1Schema, PaymentRequiredV2Schema } from '@x402/core/schemas';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment as wrapFetchV2 } from '@x402/fetch';
import { recoverTypedDataAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createPaymentHeader } from 'x402/client';
import { PaymentRequirementsSchema, x402ResponseSchema } from 'x402/types';
import { createSigner, wrapFetchWithPayment as wrapFetchV1 } from 'x402-fetch';
import { describe, expect, it } from 'vitest';
import type { PaymentOption } from '../../src/config/types.js';
import { buildChallenge, PAYMENT_REQUIRED_HEADER, requirementV1, requirementV2, type Challenge } from '../../src/protocol/challenge.js';
import { decodePaymentHeader, type DecodeOutcome } from '../../src/protocol/decode-payment.js';
import { selectRequirement } from '../../src/protocol/select-requirement.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { makeOption, makeRoute, USDC_ARBITRUM } from '../helpers/options.js';

// anvil's first dev key: a throwaway, never funded anywhere that matters.
const PRIVATE_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(PRIVATE_KEY);
const URL = 'https://gw.example.com/v1/weather?city=Paris';

const base402 = makeOption();
const arbitrum = makeOption({ asset: USDC_ARBITRUM, amount: 20_000n });
const route = makeRoute([base402]);

function challengeFor(options: readonly PaymentOption[], error = 'Payment required'): Challenge {
  return buildChallenge({ route, resourceUrl: URL, error, options });
}

/** The 402 as the HTTP layer will send it: v2 header, info headers, v1 JSON body. */
function response402(challenge: Challenge): Response {
  return new Response(JSON.stringify(challenge.v1Body), {
    status: 402,
    headers: { [PAYMENT_REQUIRED_HEADER]: challenge.v2Header, 'content-type': 'application/json', 'cache-control': 'no-store', ...challenge.infoHeaders },
  });
}

/** A fetch that answers 402 until it sees a payment header, and records the headers of every call. */
function fakeGateway(challenge: Challenge): { fetch: typeof globalThis.fetch; seen: Headers[] } {
  const seen: Headers[] = [];
  const fetch = async (input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit): Promise<Response> => {
    const headers = new Headers(input instanceof Request ? input.headers : undefined);
    new Headers(init?.headers).forEach((value, key) => headers.set(key, value));
    seen.push(headers);
    const paid = headers.has('payment-signature') || headers.has('x-payment');
    return paid ? new Response('{"temperature":21}', { status: 200 }) : response402(challenge);
  };
  return { fetch, seen };
}

function expectOk(outcome: DecodeOutcome): DecodedPayment {
  if (outcome.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(outcome)}`);
  return outcome.payment;
}

/** The EIP-712 message the decoded payment stands for recovers to the signer: normalisation lost nothing. */
async function signerOf(payment: DecodedPayment, option: PaymentOption): Promise<string> {
  const { authorization, signature } = payment.payload;
  return recoverTypedDataAddress({
    domain: { name: option.asset.eip712Name, version: option.asset.eip712Version, chainId: option.asset.network.chainId, verifyingContract: option.asset.address },
    types: authorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: authorization,
    signature,
  });
}

function v2HttpClient(): x402HTTPClient {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: account });
  return new x402HTTPClient(client);
}

describe('(a) @x402/core parses our 402', () => {
  it('x402HTTPClient.getPaymentRequiredResponse reads the header, in config order', () => {
    const challenge = challengeFor([arbitrum, base402]);
    const res = response402(challenge);
    const parsed = v2HttpClient().getPaymentRequiredResponse((name) => res.headers.get(name), challenge.v1Body);
    expect(parsed).toEqual({
      x402Version: 2,
      error: 'Payment required',
      resource: { url: URL, description: 'Current weather', mimeType: 'application/json' },
      accepts: [requirementV2(arbitrum), requirementV2(base402)],
    });
    expect(PaymentRequiredV2Schema.safeParse(parsed).success).toBe(true);
  });

  it('falls back to our v1 body when the header is missing', () => {
    const challenge = challengeFor([base402]);
    const parsed = v2HttpClient().getPaymentRequiredResponse(() => null, JSON.parse(JSON.stringify(challenge.v1Body)));
    expect(parsed).toEqual({ x402Version: 1, error: 'Payment required', accepts: [requirementV1(base402, URL, route)] });
    expect(PaymentRequiredV1Schema.safeParse(parsed).success).toBe(true);
  });
});

describe('(b) the v1 x402 package accepts our body', () => {
  it('PaymentRequirementsSchema parses every accepts entry, as x402-fetch does', () => {
    const body = JSON.parse(JSON.stringify(challengeFor([arbitrum, base402]).v1Body)) as { x402Version: number; accepts: unknown[] };
    expect(body.x402Version).toBe(1);
    expect(body.accepts).toHaveLength(1);
    const parsed = body.accepts.map((entry) => PaymentRequirementsSchema.parse(entry));
    expect(parsed).toEqual([requirementV1(base402, URL, route)]);
  });

  it('x402ResponseSchema accepts the body when error is one of its enumerated reasons', () => {
    // x402ResponseSchema types `error` as the legacy ErrorReasons enum; x402-fetch never parses
    // the body with it (it reads x402Version and accepts only), so free text is fine on the wire.
    const body = JSON.parse(JSON.stringify(challengeFor([base402], 'insufficient_funds').v1Body)) as unknown;
    expect(x402ResponseSchema.safeParse(body).success).toBe(true);
    const freeText = JSON.parse(JSON.stringify(challengeFor([base402], 'X-PAYMENT header is required').v1Body)) as unknown;
    expect(x402ResponseSchema.safeParse(freeText).success).toBe(false);
  });
});

describe('(c) payloads made by the official clients decode and select', () => {
  it('@x402/evm v2 ExactEvmScheme through x402Client and the official encoder', async () => {
    const challenge = challengeFor([arbitrum, base402]);
    const res = response402(challenge);
    const httpClient = v2HttpClient();
    const paymentRequired = httpClient.getPaymentRequiredResponse((name) => res.headers.get(name), challenge.v1Body);
    const payload = await httpClient.createPaymentPayload(paymentRequired);
    const headers = httpClient.encodePaymentSignatureHeader(payload);
    expect(Object.keys(headers)).toEqual(['PAYMENT-SIGNATURE']);

    const payment = expectOk(decodePaymentHeader({ paymentSignature: headers['PAYMENT-SIGNATURE'] }));
    // The exact field list the official v2 client sends (extensions absent: we advertise none).
    expect(Object.keys(payment.raw).sort()).toEqual(['accepted', 'payload', 'resource', 'x402Version']);
    expect(payment.raw).toEqual(decodePaymentSignatureHeader(headers['PAYMENT-SIGNATURE'] ?? ''));
    expect(payment.raw['resource']).toEqual({ url: URL, description: 'Current weather', mimeType: 'application/json' });
    expect(payment.accepted).toEqual(requirementV2(arbitrum));
    expect(payment.payload.authorization).toMatchObject({ from: account.address, value: 20_000n, validAfter: 0n });

    // The default selector takes accepts[0]; we select the same option.
    expect(selectRequirement(payment, [arbitrum, base402])).toEqual({ kind: 'ok', option: arbitrum });
    expect(await signerOf(payment, arbitrum)).toBe(account.address);
  });

  it('@x402/fetch end to end: parses our 402, pays the first option, sends PAYMENT-SIGNATURE', async () => {
    const gateway = fakeGateway(challengeFor([base402, arbitrum]));
    const fetchWithPayment = wrapFetchV2(gateway.fetch, v2HttpClient());
    const res = await fetchWithPayment(URL);
    expect(res.status).toBe(200);
    expect(gateway.seen).toHaveLength(2);
    const retry = gateway.seen[1];
    expect(retry?.get('x-payment')).toBeNull();
    const payment = expectOk(decodePaymentHeader({ paymentSignature: retry?.get('payment-signature') ?? undefined }));
    expect(payment).toMatchObject({ x402Version: 2, header: 'payment-signature', network: 'eip155:8453' });
    expect(selectRequirement(payment, [base402, arbitrum])).toEqual({ kind: 'ok', option: base402 });
    expect(await signerOf(payment, base402)).toBe(account.address);
  });

  it('@x402/evm v1 ExactEvmSchemeV1 against our v1 body, sent as X-PAYMENT', async () => {
    const challenge = challengeFor([base402]);
    const httpClient = v2HttpClient();
    const paymentRequired = httpClient.getPaymentRequiredResponse(() => null, JSON.parse(JSON.stringify(challenge.v1Body)));
    const payload = await httpClient.createPaymentPayload(paymentRequired);
    const headers = httpClient.encodePaymentSignatureHeader(payload);
    expect(Object.keys(headers)).toEqual(['X-PAYMENT']);

    const payment = expectOk(decodePaymentHeader({ xPayment: headers['X-PAYMENT'] }));
    expect(Object.keys(payment.raw).sort()).toEqual(['network', 'payload', 'scheme', 'x402Version']);
    expect(payment).toMatchObject({ x402Version: 1, header: 'x-payment', network: 'base', accepted: undefined });
    expect(payment.payload.authorization.value).toBe(10_000n);
    expect(selectRequirement(payment, [base402])).toEqual({ kind: 'ok', option: base402 });
    expect(await signerOf(payment, base402)).toBe(account.address);
  });

  it('x402 1.2.0 createPaymentHeader against our v1 requirement', async () => {
    const requirement = PaymentRequirementsSchema.parse(requirementV1(base402, URL, route));
    const header = await createPaymentHeader(account, 1, requirement);
    const payment = expectOk(decodePaymentHeader({ xPayment: header }));
    expect(Object.keys(payment.raw).sort()).toEqual(['network', 'payload', 'scheme', 'x402Version']);
    expect(Object.keys(payment.raw['payload'] as object).sort()).toEqual(['authorization', 'signature']);
    expect(selectRequirement(payment, [arbitrum, base402])).toEqual({ kind: 'ok', option: base402 });
    expect(await signerOf(payment, base402)).toBe(account.address);
  });

  it('x402-fetch 1.2.0 end to end: reads our v1 body, ignores the v2 header, sends X-PAYMENT', async () => {
    const gateway = fakeGateway(challengeFor([arbitrum, base402]));
    // x402's own signer factory: a viem wallet client on Base; signing is local, no RPC call is made.
    const wallet = await createSigner('base', PRIVATE_KEY);
    const fetchWithPayment = wrapFetchV1(gateway.fetch, wallet);
    const res = await fetchWithPayment(URL);
    expect(res.status).toBe(200);
    const retry = gateway.seen[1];
    expect(retry?.get('payment-signature')).toBeNull();
    expect(retry?.get('access-control-expose-headers')).toBe('X-PAYMENT-RESPONSE');
    const payment = expectOk(decodePaymentHeader({ xPayment: retry?.get('x-payment') ?? undefined }));
    expect(payment).toMatchObject({ x402Version: 1, network: 'base' });
    expect(selectRequirement(payment, [arbitrum, base402])).toEqual({ kind: 'ok', option: base402 });
    expect(await signerOf(payment, base402)).toBe(account.address);
  });

  it('a tampered official payload still decodes, but no longer recovers to the payer', async () => {
    const requirement = PaymentRequirementsSchema.parse(requirementV1(base402, URL, route));
    const header = await createPaymentHeader(account, 1, requirement);
    const raw = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { payload: { authorization: { value: string } } };
    raw.payload.authorization.value = '1';
    const payment = expectOk(decodePaymentHeader({ xPayment: Buffer.from(JSON.stringify(raw)).toString('base64') }));
    expect(await signerOf(payment, base402)).not.toBe(account.address);
  });
});
