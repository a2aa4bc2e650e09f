import { getAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { decodeBase64Json } from '../../src/protocol/base64.js';
import { buildChallenge, requirementV1, requirementV2 } from '../../src/protocol/challenge.js';
import { BASE_USDC, makeOption, makeRoute, PAY_TO, USDC_ARBITRUM } from '../helpers/options.js';

const URL = 'https://gw.example.com/v1/weather?city=Paris&units=metric';

function decodeHeader(header: string): unknown {
  const decoded = decodeBase64Json(header);
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value;
}

describe('requirementV2', () => {
  it('is the v2 wire form of an option', () => {
    expect(requirementV2(makeOption())).toEqual({
      scheme: 'exact',
      network: 'eip155:8453',
      amount: '10000',
      asset: BASE_USDC,
      payTo: PAY_TO,
      maxTimeoutSeconds: 300,
      extra: { name: 'USD Coin', version: '2' },
    });
  });

  // Config checksums every address (config.test.ts), so the wire form carries them unchanged.
  it('sends a checksummed option\'s addresses as they are', () => {
    const option = makeOption();
    expect(requirementV2(option)).toMatchObject({ asset: getAddress(BASE_USDC), payTo: getAddress(PAY_TO) });
    expect(buildChallenge({ route: makeRoute([option]), resourceUrl: URL, error: 'e', options: [option] }).infoHeaders['X-Payment-Address']).toBe(getAddress(PAY_TO));
  });

  it('is computed once per option and frozen', () => {
    const option = makeOption();
    const first = requirementV2(option);
    expect(requirementV2(option)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first.extra)).toBe(true);
  });

  it('writes big amounts as plain decimal', () => {
    expect(requirementV2(makeOption({ amount: 10n ** 30n })).amount).toBe('1000000000000000000000000000000');
  });
});

describe('requirementV1', () => {
  it('is the v1 wire form for one resource, without outputSchema', () => {
    const route = makeRoute([]);
    const requirement = requirementV1(makeOption(), URL, route);
    expect(requirement).toEqual({
      scheme: 'exact',
      network: 'base',
      maxAmountRequired: '10000',
      resource: URL,
      description: 'Current weather',
      mimeType: 'application/json',
      payTo: PAY_TO,
      maxTimeoutSeconds: 300,
      asset: BASE_USDC,
      extra: { name: 'USD Coin', version: '2' },
    });
    expect(requirement).not.toHaveProperty('outputSchema');
  });

  it('is undefined for a network without a v1 name', () => {
    expect(requirementV1(makeOption({ asset: USDC_ARBITRUM }), URL, makeRoute([]))).toBeUndefined();
  });
});

describe('buildChallenge', () => {
  const base = makeOption();
  const arbitrum = makeOption({ asset: USDC_ARBITRUM, amount: 20_000n });
  const options = [arbitrum, base];
  const route = makeRoute(options);

  it('puts the v2 PaymentRequired in the header, every option in config order', () => {
    const challenge = buildChallenge({ route, resourceUrl: URL, error: 'Payment required', options });
    expect(challenge.status).toBe(402);
    expect(decodeHeader(challenge.v2Header)).toEqual({
      x402Version: 2,
      error: 'Payment required',
      resource: { url: URL, description: 'Current weather', mimeType: 'application/json' },
      accepts: [requirementV2(arbitrum), requirementV2(base)],
    });
  });

  it('sends a v1 body with only the options that have a v1 network name', () => {
    const challenge = buildChallenge({ route, resourceUrl: URL, error: 'X-PAYMENT header is required', options });
    expect(challenge.v1Body).toEqual({
      x402Version: 1,
      error: 'X-PAYMENT header is required',
      accepts: [requirementV1(base, URL, route)],
    });
  });

  it('sends an empty v1 accepts list when no option has a v1 name', () => {
    const challenge = buildChallenge({ route, resourceUrl: URL, error: 'e', options: [arbitrum] });
    expect(challenge.v1Body.accepts).toEqual([]);
  });

  it('gives the seed info headers from the first option', () => {
    expect(buildChallenge({ route, resourceUrl: URL, error: 'e', options: [base, arbitrum] }).infoHeaders).toEqual({
      'X-Payment-Address': PAY_TO,
      'X-Payment-Amount': '0.01',
      'X-Payment-Currency': 'USDC',
      'X-Payment-Chain': 'base',
    });
    expect(buildChallenge({ route, resourceUrl: URL, error: 'e', options }).infoHeaders).toMatchObject({
      'X-Payment-Amount': '0.02',
      'X-Payment-Chain': 'eip155:42161',
    });
  });

  it.each([
    [10_000n, '0.01'],
    [1_000_000n, '1'],
    [1_500_000n, '1.5'],
    [1n, '0.000001'],
    [0n, '0'],
    [123_456_789_000n, '123456.789'],
  ])('formats %s atomic units as %s', (amount, text) => {
    const option = makeOption({ amount });
    expect(buildChallenge({ route, resourceUrl: URL, error: 'e', options: [option] }).infoHeaders['X-Payment-Amount']).toBe(text);
  });

  it('escapes error, URL, description and mime type as JSON', () => {
    const odd = makeRoute(options, { description: 'Quote " and \\ and \u2028 and é', mimeType: 'text/plain; charset="utf-8"' });
    const error = 'bad "thing"\n';
    const url = 'https://gw.example.com/a?q="x"&e=é';
    const header = decodeHeader(buildChallenge({ route: odd, resourceUrl: url, error, options }).v2Header);
    expect(header).toMatchObject({ error, resource: { url, description: odd.description, mimeType: odd.mimeType } });
  });

  it('mimeType and description are strings even when empty', () => {
    const plain = makeRoute(options, { description: '', mimeType: '' });
    const { v1Body } = buildChallenge({ route: plain, resourceUrl: URL, error: 'e', options });
    expect(v1Body.accepts[0]).toMatchObject({ description: '', mimeType: '' });
  });

  it('header is standard base64 with padding', () => {
    const { v2Header } = buildChallenge({ route, resourceUrl: URL, error: 'e', options });
    expect(v2Header).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    expect(v2Header.length % 4).toBe(0);
  });

  it('refuses to build a challenge without options (a config bug, not a client error)', () => {
    expect(() => buildChallenge({ route, resourceUrl: URL, error: 'e', options: [] })).toThrow(/at least one payment option/);
  });

  it('builds the same answer from a cached option list', () => {
    const first = buildChallenge({ route, resourceUrl: URL, error: 'e', options });
    const second = buildChallenge({ route, resourceUrl: `${URL}&x=1`, error: 'e', options });
    expect(second.infoHeaders).toBe(first.infoHeaders);
    expect(decodeHeader(second.v2Header)).toMatchObject({ resource: { url: `${URL}&x=1` } });
    expect(second.v1Body.accepts[0]?.resource).toBe(`${URL}&x=1`);
  });
});
