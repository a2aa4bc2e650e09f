/**
 * What the settling account put on chain, read back from blocks and receipts: each transaction
 * that moved at least one payment (the token's AuthorizationUsed event), its gasUsed, and how many
 * payments it carried. One payment per transaction is `transferWithAuthorization` sent to the
 * token (settle after, the official facilitator); many is a Multicall3 `aggregate3` batch
 * (settlement: deferred). The token's mint and the contracts' set-up move no authorization and
 * are not counted.
 */
import { getAddress, keccak256, toBytes, type Address } from 'viem';
import type { DevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC } from '../../src/tools/devchain/token.js';

const AUTHORIZATION_USED = keccak256(toBytes('AuthorizationUsed(address,bytes32)'));

export interface SettlementTx {
  readonly block: number;
  /** Payments it moved: AuthorizationUsed events of the token in its receipt. */
  readonly payments: number;
  readonly gasUsed: bigint;
  /** Sent to the token (one payment) or to another contract (a batch through Multicall3). */
  readonly direct: boolean;
}

/** Every settlement transaction from `from` in blocks 1 to the latest. */
export async function settlementTxs(client: DevChainClient, from: Address): Promise<SettlementTx[]> {
  const latest = Number(await client.getBlockNumber());
  const sender = getAddress(from);
  const token = getAddress(BASE_USDC);
  const out: SettlementTx[] = [];
  for (let n = 1; n <= latest; n++) {
    const block = await client.getBlock({ blockNumber: BigInt(n), includeTransactions: true });
    const mine = block.transactions.filter((tx) => getAddress(tx.from) === sender);
    const receipts = await Promise.all(mine.map((tx) => client.getTransactionReceipt({ hash: tx.hash })));
    for (const [i, receipt] of receipts.entries()) {
      const payments = receipt.logs.filter((l) => getAddress(l.address) === token && l.topics[0] === AUTHORIZATION_USED).length;
      if (payments === 0) continue;
      const to = mine[i]?.to;
      out.push({ block: n, payments, gasUsed: receipt.gasUsed, direct: to !== null && to !== undefined && getAddress(to) === token });
    }
  }
  return out;
}
