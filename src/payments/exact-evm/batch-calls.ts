/**
 * Many EIP-3009 authorizations settled in one transaction: Multicall3's `aggregate3`, each
 * `transferWithAuthorization` a call with `allowFailure: true`, so one authorization that fails
 * (its payer moved the funds, its nonce was spent elsewhere) does not revert the others. The
 * token does not care who calls `transferWithAuthorization` (unlike `receiveWithAuthorization`,
 * which wants the payee), so Multicall3 may submit them.
 *
 * A mined batch succeeds even when every call in it failed, so the transaction's status says
 * nothing about an item: each item's outcome is read from the token's own events in the receipt.
 * An item settled when its token logged `AuthorizationUsed(from, nonce)` and the `Transfer` of its
 * terms; a failed call rolled back its events, so neither is there.
 *
 * Pure: calldata in, outcomes out. Sending, logging and waiting belong to the batcher.
 */
import { decodeFunctionResult, encodeFunctionData, isAddressEqual, multicall3Abi, parseEventLogs, type Log } from 'viem';
import type { Address } from '../../config/types.js';
import type { Eip3009Authorization, Hex } from '../../protocol/types.js';
import { authorizationUsedIn, eip3009Abi, transferCall } from './abi.js';

/** One queued authorization, as the batcher settles it. */
export interface BatchItem {
  /** The queue's id of the item. */
  readonly id: string;
  /** The token (the call's target). */
  readonly asset: Address;
  readonly authorization: Eip3009Authorization;
  readonly signature: Hex;
}

/**
 * `settled`: the token logged the authorization used and its transfer. `failed`: neither (the call
 * reverted inside the batch, so nothing moved). `mismatch`: the authorization was used but no
 * transfer of its terms was logged: unaccountable, so never "nothing charged" (left for a human).
 */
export type BatchItemOutcome = 'settled' | 'failed' | 'mismatch';

/** The `aggregate3` call list; throws for an item whose signature encodes no call (verification refuses those). */
export function batchCalls(items: readonly BatchItem[]): { target: Address; allowFailure: true; callData: Hex }[] {
  return items.map((item) => {
    const call = transferCall(item.authorization, item.signature);
    if (call === undefined) throw new Error(`batch item ${item.id}: its signature encodes no transferWithAuthorization call`);
    return { target: item.asset, allowFailure: true, callData: encodeFunctionData({ abi: eip3009Abi, ...call }) };
  });
}

/** The transaction's calldata, sent to Multicall3. */
export function batchCalldata(items: readonly BatchItem[]): Hex {
  return encodeFunctionData({ abi: multicall3Abi, functionName: 'aggregate3', args: [batchCalls(items)] });
}

/**
 * What `eth_call` of the batch says of each item, in order: true when its call would succeed now.
 * A simulation, not an outcome: the chain may change before the batch is mined.
 */
export function simulatedSuccesses(data: Hex): boolean[] {
  return decodeFunctionResult({ abi: multicall3Abi, functionName: 'aggregate3', data }).map((result) => result.success);
}

/** Each item's outcome, by id, from a mined batch's logs. */
export function batchOutcomes(items: readonly BatchItem[], logs: readonly Log[]): Map<string, BatchItemOutcome> {
  const transfers = parseEventLogs({ abi: eip3009Abi, eventName: 'Transfer', logs: [...logs] });
  const outcomes = new Map<string, BatchItemOutcome>();
  for (const item of items) {
    const auth = item.authorization;
    if (!authorizationUsedIn(logs, item.asset, auth.from, auth.nonce)) {
      outcomes.set(item.id, 'failed');
      continue;
    }
    const moved = transfers.some(
      (log) => isAddressEqual(log.address, item.asset) && isAddressEqual(log.args.from, auth.from) && isAddressEqual(log.args.to, auth.to) && log.args.value === auth.value,
    );
    outcomes.set(item.id, moved ? 'settled' : 'mismatch');
  }
  return outcomes;
}

/**
 * Splits `items` (oldest first) into batches of at most `maxSize` whose estimated gas, at
 * `gasPerItem` each over `baseGas`, stays within `maxGas`. Every batch holds at least one item.
 */
export function planBatches<T>(items: readonly T[], limits: { readonly maxSize: number; readonly maxGas: bigint; readonly baseGas: bigint; readonly gasPerItem: bigint }): T[][] {
  const byGas = limits.gasPerItem > 0n ? Number((limits.maxGas - limits.baseGas) / limits.gasPerItem) : limits.maxSize;
  const size = Math.max(1, Math.min(limits.maxSize, byGas));
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += size) batches.push(items.slice(start, start + size));
  return batches;
}
