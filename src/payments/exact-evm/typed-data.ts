/**
 * The EIP-712 message an EIP-3009 `TransferWithAuthorization` signature covers. Pure.
 *
 * The domain comes from our own asset config (name, version, chain id, token address), the same
 * values the challenge advertised in `extra`; a client that signed under any other domain simply
 * fails signature recovery, which is the reference facilitator's behaviour too.
 */
import { hashTypedData, type TypedDataDomain } from 'viem';
import type { AssetConfig } from '../../config/types.js';
import type { Eip3009Authorization, Hex } from '../../protocol/types.js';

/** As `@x402/evm`'s `authorizationTypes`; the order of fields is part of the type hash. */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const;

/** The token's EIP-712 domain: `{ name, version, chainId, verifyingContract }`. */
export function eip3009Domain(asset: AssetConfig): TypedDataDomain {
  return {
    name: asset.eip712Name,
    version: asset.eip712Version,
    chainId: asset.network.chainId,
    verifyingContract: asset.address,
  };
}

/** The full typed-data value, as a signer (viem `signTypedData`) takes it. */
export function transferWithAuthorizationTypedData(asset: AssetConfig, authorization: Eip3009Authorization) {
  return {
    domain: eip3009Domain(asset),
    types: transferWithAuthorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: {
      from: authorization.from,
      to: authorization.to,
      value: authorization.value,
      validAfter: authorization.validAfter,
      validBefore: authorization.validBefore,
      nonce: authorization.nonce,
    },
  } as const;
}

/** The 32-byte digest that is signed (ECDSA) or handed to ERC-1271 `isValidSignature`. */
export function transferWithAuthorizationDigest(asset: AssetConfig, authorization: Eip3009Authorization): Hex {
  return hashTypedData(transferWithAuthorizationTypedData(asset, authorization));
}
