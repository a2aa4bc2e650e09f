import { describe, expect, it } from 'vitest';
import type { PaymentOption } from '../../src/config/types.js';
import { requirementV2 } from '../../src/protocol/challenge.js';
import { selectRequirement } from '../../src/protocol/select-requirement.js';
import type { DecodedPayment, WireRequirementV2 } from '../../src/protocol/types.js';
import { makeOption, PAY_TO, USDC_ARBITRUM, USDC_BASE } from '../helpers/options.js';

const OTHER_PAYEE = '0x1111111111111111111111111111111111111111';

function payment(x402Version: 1 | 2, network: string, accepted: WireRequirementV2 | undefined, value = 10_000n, to = PAY_TO): DecodedPayment {
  return {
    x402Version,
    header: x402Version === 2 ? 'payment-signature' : 'x-payment',
    scheme: 'exact',
    network,
    accepted,
    payload: {
      signature: `0x${'ab'.repeat(65)}`,
      authorization: {
        from: '0x857b06519E91e3A54538791bDbb0E22373e36b66',
        to,
        value,
        validAfter: 0n,
        validBefore: 2_000_000_000n,
        nonce: `0x${'1f'.repeat(32)}`,
      },
    },
    raw: {},
  };
}

const v2For = (accepted: WireRequirementV2): DecodedPayment => payment(2, accepted.network, accepted);

describe('selectRequirement v2', () => {
  const base = makeOption();
  const arbitrum = makeOption({ asset: USDC_ARBITRUM });
  const options = [base, arbitrum];

  it('selects the option whose requirement the client echoed', () => {
    expect(selectRequirement(v2For(requirementV2(arbitrum)), options)).toEqual({ kind: 'ok', option: arbitrum });
    expect(selectRequirement(v2For(requirementV2(base)), options)).toEqual({ kind: 'ok', option: base });
  });

  it('compares asset and payTo case-insensitively', () => {
    const echoed = { ...requirementV2(base), asset: requirementV2(base).asset.toLowerCase(), payTo: PAY_TO.toUpperCase().replace('0X', '0x') };
    expect(selectRequirement(v2For(echoed), options)).toEqual({ kind: 'ok', option: base });
  });

  it('tolerates extra keys in the echoed extra (ours must be a subset)', () => {
    const echoed = { ...requirementV2(base), extra: { name: 'USD Coin', version: '2', note: 'client added' } };
    expect(selectRequirement(v2For(echoed), options)).toEqual({ kind: 'ok', option: base });
  });

  it.each<[string, Partial<WireRequirementV2>]>([
    ['amount', { amount: '9999' }],
    ['amount with a leading zero', { amount: '010000' }],
    ['asset', { asset: USDC_ARBITRUM.address }],
    ['payTo', { payTo: OTHER_PAYEE }],
    ['maxTimeoutSeconds', { maxTimeoutSeconds: 301 }],
    ['extra.name', { extra: { name: 'USDC', version: '2' } }],
    ['extra.version', { extra: { name: 'USD Coin', version: '1' } }],
    ['missing extra', { extra: {} }],
    ['scheme', { scheme: 'upto' }],
  ])('refuses a different %s as no_matching_requirements', (_name, change) => {
    const echoed = { ...requirementV2(base), ...change };
    expect(selectRequirement(v2For(echoed), options)).toEqual({ kind: 'no_match', reason: 'no_matching_requirements' });
  });

  it('says invalid_network for a network no option is on', () => {
    const echoed = { ...requirementV2(base), network: 'eip155:1' };
    expect(selectRequirement(v2For(echoed), options)).toEqual({ kind: 'no_match', reason: 'invalid_network' });
    // A v1 name in a v2 payload is not a CAIP-2 id we know.
    expect(selectRequirement(v2For({ ...requirementV2(base), network: 'base' }), options)).toMatchObject({ reason: 'invalid_network' });
  });

  it('never matches a v2 payment without accepted', () => {
    expect(selectRequirement(payment(2, 'eip155:8453', undefined), options)).toEqual({ kind: 'no_match', reason: 'no_matching_requirements' });
  });
});

describe('selectRequirement v1', () => {
  it('selects by scheme and v1 network name', () => {
    const base = makeOption();
    const arbitrum = makeOption({ asset: USDC_ARBITRUM });
    expect(selectRequirement(payment(1, 'base', undefined), [arbitrum, base])).toEqual({ kind: 'ok', option: base });
  });

  it('leaves the amount to verification when only one option is on the network', () => {
    const base = makeOption();
    expect(selectRequirement(payment(1, 'base', undefined, 1n), [base])).toEqual({ kind: 'ok', option: base });
  });

  it('among several options on one network, picks the one the amount and recipient fit', () => {
    const cheap = makeOption({ amount: 1_000n });
    const dear = makeOption({ amount: 10_000n });
    const dearElsewhere = makeOption({ amount: 10_000n, payTo: OTHER_PAYEE });
    const options: PaymentOption[] = [cheap, dearElsewhere, dear];
    expect(selectRequirement(payment(1, 'base', undefined, 10_000n), options)).toEqual({ kind: 'ok', option: dear });
    expect(selectRequirement(payment(1, 'base', undefined, 10_000n, OTHER_PAYEE), options)).toEqual({ kind: 'ok', option: dearElsewhere });
    expect(selectRequirement(payment(1, 'base', undefined, 1_000n, OTHER_PAYEE), options)).toEqual({ kind: 'ok', option: cheap });
    expect(selectRequirement(payment(1, 'base', undefined, 5n), options)).toEqual({ kind: 'ok', option: cheap });
  });

  it('says invalid_network for an unknown v1 name, a CAIP-2 id, or a chain without a v1 name', () => {
    const options = [makeOption(), makeOption({ asset: USDC_ARBITRUM })];
    expect(selectRequirement(payment(1, 'base-sepolia', undefined), options)).toEqual({ kind: 'no_match', reason: 'invalid_network' });
    expect(selectRequirement(payment(1, 'eip155:8453', undefined), options)).toEqual({ kind: 'no_match', reason: 'invalid_network' });
    expect(selectRequirement(payment(1, 'arbitrum', undefined), [makeOption({ asset: USDC_ARBITRUM })])).toMatchObject({
      reason: 'invalid_network',
    });
  });

  it('does not care which asset object is configured, only its network', () => {
    const option = makeOption({ asset: { ...USDC_BASE } });
    expect(selectRequirement(payment(1, 'base', undefined), [option])).toEqual({ kind: 'ok', option });
  });
});
