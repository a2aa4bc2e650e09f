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
import { decodeFunctionResult, encodeFunctionData } from 'viem';
import type { Address } from '../../config/types.js';
import { InfrastructureError } from '../../errors.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import { eip3009Abi, erc1271Abi, ERC1271_MAGIC_VALUE } from './abi.js';
import { describeFault } from '../chain/describe-fault.js';
import { isContractFailure, isOutOfGas } from '../chain/rpc-errors.js';
import { readThroughMulticall3, type NonceStateAndBalance } from './multicall-reads.js';

export interface ExactEvmChainReader {
  readonly chainId: number;
  /** True when `address` has contract code (a smart wallet, or an EIP-7702 delegated account). */
  hasCode(address: Address): Promise<boolean>;
  /**
   * ERC-1271: does `wallet` accept `signature` for `digest`? A reverting wallet says no, and so
   * does one that needs more than the reader's gas bound to answer.
   */
  isValidErc1271Signature(wallet: Address, digest: Hex, signature: Hex): Promise<boolean>;
  /** EIP-3009 `authorizationState`; `undefined` when the token does not implement it. */
  authorizationState(asset: Address, authorizer: Address, nonce: Hex): Promise<boolean | undefined>;
  /** ERC-20 `balanceOf`; `undefined` when the call reverts. */
  balanceOf(asset: Address, owner: Address): Promise<bigint | undefined>;
  /** Both of the above, in one call through Multicall3 where the chain has it (multicall-reads.ts). */
  nonceStateAndBalance(asset: Address, authorizer: Address, nonce: Hex): Promise<NonceStateAndBalance>;
}

/**
 * Gas units an ERC-1271 check may use when the network does not settle locally: the gas is then
 * a facilitator's, so this only bounds the node's work (and ours waiting), loosely enough for any
 * real wallet (a passkey check without the P-256 precompile costs a few hundred thousand). A
 * network that settles locally bounds it by `settle.maxGas` instead (backends.ts): a check that
 * needs more could never settle within the cap.
 */
export const DEFAULT_ERC1271_GAS_LIMIT = 1_000_000n;

export interface ViemChainReaderOptions {
  /** The gas bound of the ERC-1271 `eth_call`; DEFAULT_ERC1271_GAS_LIMIT by default. */
  readonly erc1271GasLimit?: bigint;
  /** Multicall3 on this chain; none: two calls. */
  readonly multicall3?: Address;
}

/** An ERC-1271 answer that decodes to the magic value; no data or garbage is a "no", as the token reads it. */
function isMagicValue(data: Hex): boolean {
  try {
    return decodeFunctionResult({ abi: erc1271Abi, functionName: 'isValidSignature', data }).toLowerCase() === ERC1271_MAGIC_VALUE;
  } catch {
    return false;
  }
}

/** The reader over a viem public client. */
export function createViemChainReader(client: ChainClient, options: ViemChainReaderOptions = {}): ExactEvmChainReader {
  const chainId = client.chain.id;
  // Without a bound, the node runs the payer's code up to its own eth_call cap (tens of millions
  // of gas): the payer would choose how much work each verification costs.
  const erc1271Gas = options.erc1271GasLimit ?? DEFAULT_ERC1271_GAS_LIMIT;
  // In our words (describe-fault.ts): viem's own message prints the endpoint's URL, API key and all.
  const unavailable = (what: string, err: unknown): InfrastructureError =>
    new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `chain ${chainId}: ${what} failed: ${describeFault(err)}`, { cause: err });

  /** Runs a contract read: the contract's refusal becomes `refused`, anything else an infrastructure fault. */
  async function contractRead<T, R>(what: string, read: () => Promise<T>, refused: R): Promise<T | R> {
    try {
      return await read();
    } catch (err) {
      if (isContractFailure(err)) return refused;
      throw unavailable(what, err);
    }
  }

  // Cleared for good the first time the address turns out to hold no Multicall3.
  let multicall3 = options.multicall3;

  const reader: ExactEvmChainReader = {
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
      const data = encodeFunctionData({ abi: erc1271Abi, functionName: 'isValidSignature', args: [digest, signature] });
      // eth_call itself, since readContract takes no gas limit. A wallet that runs out of the
      // bound's gas has said no: it could not say yes within a settlement's cap either.
      const answer = await contractRead(
        'isValidSignature',
        () =>
          client.call({ to: wallet, data, gas: erc1271Gas }).then(
            (result) => result.data,
            (err: unknown) => {
              if (isOutOfGas(err)) return undefined;
              throw err;
            },
          ),
        undefined,
      );
      return answer !== undefined && isMagicValue(answer);
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
    async nonceStateAndBalance(asset, authorizer, nonce) {
      if (multicall3 !== undefined) {
        const both = await contractRead('aggregate3', () => readThroughMulticall3(client, multicall3 as Address, asset, authorizer, nonce), undefined);
        if (both !== undefined) return both;
        multicall3 = undefined;
      }
      const [used, balance] = await Promise.all([reader.authorizationState(asset, authorizer, nonce), reader.balanceOf(asset, authorizer)]);
      return { used, balance };
    },
  };
  return reader;
}
