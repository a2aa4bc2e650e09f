import { authorizationTypes, eip3009ABI } from '@x402/evm';
import { hashTypedData, recoverAddress, toFunctionSelector, type AbiFunction } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { eip3009Abi } from '../../src/payments/exact-evm/abi.js';
import {
  eip3009Domain,
  transferWithAuthorizationDigest,
  transferWithAuthorizationTypedData,
  transferWithAuthorizationTypes,
} from '../../src/payments/exact-evm/typed-data.js';
import type { Eip3009Authorization } from '../../src/protocol/types.js';
import { BASE, officialPayment, PAY_TO, USDC_BASE } from '../helpers/options.js';

const NETWORK = BASE;
const ASSET = USDC_BASE;
const PAYER = privateKeyToAccount(`0x${'11'.repeat(32)}`);

describe('EIP-3009 typed data', () => {
  it('uses the same TransferWithAuthorization type as @x402/evm', () => {
    expect(transferWithAuthorizationTypes).toEqual(authorizationTypes);
  });

  it('builds the domain from the asset config', () => {
    expect(eip3009Domain(ASSET)).toEqual({
      name: 'USD Coin',
      version: '2',
      chainId: 8453,
      verifyingContract: ASSET.address,
    });
  });

  it('hashes to the digest the official client signs (recovers to the payer)', async () => {
    const { authorization, signature } = (await officialPayment(PAYER)).payload;
    const digest = transferWithAuthorizationDigest(ASSET, authorization);
    expect(await recoverAddress({ hash: digest, signature })).toBe(PAYER.address);
  });

  it('gives a different digest for any change of domain or message', () => {
    const auth: Eip3009Authorization = {
      from: PAYER.address,
      to: PAY_TO,
      value: 10_000n,
      validAfter: 0n,
      validBefore: 2_000_000_000n,
      nonce: `0x${'ab'.repeat(32)}`,
    };
    const base = transferWithAuthorizationDigest(ASSET, auth);
    expect(base).toBe(hashTypedData(transferWithAuthorizationTypedData(ASSET, auth)));
    const variants = [
      transferWithAuthorizationDigest({ ...ASSET, eip712Name: 'USDC' }, auth),
      transferWithAuthorizationDigest({ ...ASSET, eip712Version: '1' }, auth),
      transferWithAuthorizationDigest({ ...ASSET, network: { ...NETWORK, chainId: 84532 } }, auth),
      transferWithAuthorizationDigest({ ...ASSET, address: '0x036CbD53842c5426634e7929541eC2318f3dCF7e' }, auth),
      transferWithAuthorizationDigest(ASSET, { ...auth, value: 10_001n }),
      transferWithAuthorizationDigest(ASSET, { ...auth, nonce: `0x${'ac'.repeat(32)}` }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });
});

describe('EIP-3009 ABI', () => {
  const selectors = (abi: readonly unknown[]): string[] =>
    abi
      .filter((item): item is AbiFunction => typeof item === 'object' && item !== null && 'type' in item && item.type === 'function')
      .filter((fn) => ['transferWithAuthorization', 'authorizationState', 'balanceOf'].includes(fn.name))
      .map((fn) => toFunctionSelector(fn))
      .sort();

  it('has the same function selectors as @x402/evm for the functions it shares', () => {
    expect(selectors(eip3009Abi)).toEqual(selectors(eip3009ABI));
    expect(selectors(eip3009Abi)).toHaveLength(4);
  });
});
