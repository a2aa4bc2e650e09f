/**
 * The contract surface the exact scheme touches: EIP-3009 on the token (as `@x402/evm`'s
 * `eip3009ABI`), ERC-20 `balanceOf` and `Transfer`, and ERC-1271 on contract wallets.
 */
import { getAbiItem, isAddressEqual, parseAbi, parseEventLogs, type Address, type Log } from 'viem';
import type { Eip3009Authorization, Hex } from '../../protocol/types.js';
import { classifySignature, splitEcdsa } from './signature.js';

/** The six fields of an EIP-3009 authorization, in type-hash order. */
export const authorizationInputs = [
  { name: 'from', type: 'address' },
  { name: 'to', type: 'address' },
  { name: 'value', type: 'uint256' },
  { name: 'validAfter', type: 'uint256' },
  { name: 'validBefore', type: 'uint256' },
  { name: 'nonce', type: 'bytes32' },
] as const;

/**
 * `transferWithAuthorization` has two overloads: (v, r, s) for a 65-byte ECDSA signature, and
 * FiatToken v2.2's `bytes` one for contract-wallet (ERC-1271) or any other signature.
 */
export const eip3009Abi = parseAbi([
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'function authorizationState(address authorizer, bytes32 nonce) view returns (bool)',
  'function balanceOf(address account) view returns (uint256)',
  'event Transfer(address indexed from, address indexed to, uint256 value)',
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
]);

/** The `AuthorizationUsed` event item, for `eth_getLogs` filters. */
export const authorizationUsedEvent = getAbiItem({ abi: eip3009Abi, name: 'AuthorizationUsed' });

/** Whether `logs` hold the token `asset`'s AuthorizationUsed(authorizer, nonce): that authorization's transfer ran in them. */
export function authorizationUsedIn(logs: readonly Log[], asset: Address, authorizer: Address, nonce: Hex): boolean {
  return parseEventLogs({ abi: eip3009Abi, eventName: 'AuthorizationUsed', logs: [...logs] }).some(
    (log) => isAddressEqual(log.address, asset) && isAddressEqual(log.args.authorizer, authorizer) && log.args.nonce.toLowerCase() === nonce.toLowerCase(),
  );
}

/**
 * The `transferWithAuthorization` call for a signature, in the overload the reference uses: (v, r, s)
 * for a 65-byte ECDSA signature, `bytes` otherwise; `undefined` for a malformed ERC-6492 wrapper.
 */
export function transferCall(auth: Eip3009Authorization, signature: Hex) {
  const base = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
  const shape = classifySignature(signature);
  switch (shape.kind) {
    case 'ecdsa': {
      const { v, r, s } = splitEcdsa(shape.signature);
      return { functionName: 'transferWithAuthorization', args: [...base, v, r, s] } as const;
    }
    case 'erc6492':
      // The wallet is deployed (verification refuses counterfactual ones): it checks the inner signature.
      return { functionName: 'transferWithAuthorization', args: [...base, shape.inner] } as const;
    case 'bytes':
      return { functionName: 'transferWithAuthorization', args: [...base, shape.signature] } as const;
    case 'malformed':
      return undefined;
  }
}

/** ERC-1271's answer for a valid signature: `bytes4(keccak256("isValidSignature(bytes32,bytes)"))`. */
export const ERC1271_MAGIC_VALUE = '0x1626ba7e';

export const erc1271Abi = parseAbi(['function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)']);
