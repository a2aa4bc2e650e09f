/**
 * A verification's two token reads, `authorizationState(from, nonce)` and `balanceOf(from)`, in
 * one `eth_call` through Multicall3's `aggregate3` with `allowFailure`, where the chain has it:
 * paid RPC providers bill and throttle per call, so this halves what each verification costs.
 *
 * The encoding is viem's (`multicall3Abi`); this module adds what viem's `multicall` action does
 * not: telling "no Multicall3 at that address" (the caller falls back to two calls) apart from a
 * token that refuses one read (undefined, as chain-reader.ts documents) and from a node fault
 * (the caller's infrastructure error).
 */
import { decodeFunctionResult, encodeFunctionData, multicall3Abi } from 'viem';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import { eip3009Abi } from './abi.js';

export interface NonceStateAndBalance {
  /** `authorizationState`; undefined when the token does not answer it. */
  readonly used: boolean | undefined;
  /** `balanceOf`; undefined when the token does not answer it. */
  readonly balance: bigint | undefined;
}

/**
 * Both reads in one call, or `undefined` when `multicall3` has no code (or is not Multicall3).
 * Rejects with the transport's error when the node does not answer.
 */
export async function readThroughMulticall3(
  client: ChainClient,
  multicall3: Address,
  asset: Address,
  authorizer: Address,
  nonce: Hex,
): Promise<NonceStateAndBalance | undefined> {
  const calls = [
    { target: asset, allowFailure: true, callData: encodeFunctionData({ abi: eip3009Abi, functionName: 'authorizationState', args: [authorizer, nonce] }) },
    { target: asset, allowFailure: true, callData: encodeFunctionData({ abi: eip3009Abi, functionName: 'balanceOf', args: [authorizer] }) },
  ] as const;
  const { data } = await client.call({ to: multicall3, data: encodeFunctionData({ abi: multicall3Abi, functionName: 'aggregate3', args: [calls] }) });
  if (data === undefined || data === '0x') return undefined;
  let results: readonly { readonly success: boolean; readonly returnData: Hex }[];
  try {
    results = decodeFunctionResult({ abi: multicall3Abi, functionName: 'aggregate3', data });
  } catch {
    return undefined;
  }
  const [state, balance] = results;
  if (state === undefined || balance === undefined) return undefined;
  return {
    used: decodeOne(state, (returnData) => decodeFunctionResult({ abi: eip3009Abi, functionName: 'authorizationState', data: returnData })),
    balance: decodeOne(balance, (returnData) => decodeFunctionResult({ abi: eip3009Abi, functionName: 'balanceOf', data: returnData })),
  };
}

/** One call's answer; a failed call or an answer that does not decode is the token's refusal. */
function decodeOne<T>(result: { readonly success: boolean; readonly returnData: Hex }, decode: (data: Hex) => T): T | undefined {
  if (!result.success) return undefined;
  try {
    return decode(result.returnData);
  } catch {
    return undefined;
  }
}
