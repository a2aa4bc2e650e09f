/**
 * The chain reads verification needs, behind a small port so the checks can be tested without a
 * chain (a fake implements this and records calls) and so every RPC fault is classified in one
 * place.
 *
 * Contract: a method resolves with the chain's answer; when the contract refuses to answer (a
 * revert, no code, no such function) it resolves with `undefined` or `false` as documented; any
 * other failure (RPC unreachable, timeout, garbage) rejects with `InfrastructureError`
 * (`GW_ERR_CHAIN_UNAVAILABLE`), which the HTTP layer turns into a 503, never into free access.
 */
import type { Address } from '../../config/types.js';
import { InfrastructureError } from '../../errors.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain-client.js';
import { eip3009Abi, erc1271Abi, ERC1271_MAGIC_VALUE } from './abi.js';
import { isContractFailure } from './rpc-errors.js';

export interface ExactEvmChainReader {
  readonly chainId: number;
  /** True when `address` has contract code (a smart wallet, or an EIP-7702 delegated account). */
  hasCode(address: Address): Promise<boolean>;
  /** ERC-1271: does `wallet` accept `signature` for `digest`? A reverting wallet says no. */
  isValidErc1271Signature(wallet: Address, digest: Hex, signature: Hex): Promise<boolean>;
  /** EIP-3009 `authorizationState`; `undefined` when the token does not implement it. */
  authorizationState(asset: Address, authorizer: Address, nonce: Hex): Promise<boolean | undefined>;
  /** ERC-20 `balanceOf`; `undefined` when the call reverts. */
  balanceOf(asset: Address, owner: Address): Promise<bigint | undefined>;
}

/** The reader over a viem public client. */
export function createViemChainReader(client: ChainClient): ExactEvmChainReader {
  const chainId = client.chain.id;
  const unavailable = (what: string, err: unknown): InfrastructureError =>
    new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `chain ${chainId}: ${what} failed`, { cause: err });

  /** Runs a contract read: the contract's refusal becomes `refused`, anything else an infrastructure fault. */
  async function contractRead<T, R>(what: string, read: () => Promise<T>, refused: R): Promise<T | R> {
    try {
      return await read();
    } catch (err) {
      if (isContractFailure(err)) return refused;
      throw unavailable(what, err);
    }
  }

  return {
    chainId,
    async hasCode(address) {
      try {
        const code = await client.getCode({ address });
        return code !== undefined && code !== '0x';
      } catch (err) {
        throw unavailable('eth_getCode', err);
      }
    },
    async isValidErc1271Signature(wallet, digest, signature) {
      const answer = await contractRead(
        'isValidSignature',
        () => client.readContract({ address: wallet, abi: erc1271Abi, functionName: 'isValidSignature', args: [digest, signature] }),
        undefined,
      );
      return answer !== undefined && answer.toLowerCase() === ERC1271_MAGIC_VALUE;
    },
    authorizationState(asset, authorizer, nonce) {
      return contractRead(
        'authorizationState',
        () => client.readContract({ address: asset, abi: eip3009Abi, functionName: 'authorizationState', args: [authorizer, nonce] }),
        undefined,
      );
    },
    balanceOf(asset, owner) {
      return contractRead(
        'balanceOf',
        () => client.readContract({ address: asset, abi: eip3009Abi, functionName: 'balanceOf', args: [owner] }),
        undefined,
      );
    },
  };
}
