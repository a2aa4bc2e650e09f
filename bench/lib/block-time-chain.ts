/**
 * A chain like test/helpers/chain-world.ts's (anvil at chain id 8453, the test token at Base's
 * USDC address, Multicall3 at its canonical address, the payer funded) but mining a block every
 * `blockTimeSeconds` instead of one per transaction: Base's 2 s blocks, where every synchronous
 * settlement waits for a block and deferred settlement does not.
 */
import type { Address } from 'viem';
import { createDevChainClient, startAnvil, type DevChain, type DevChainClient } from '../../src/tools/devchain/anvil.js';
import { installMulticall3 } from '../../src/tools/devchain/multicall.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, usdcBalance } from '../../src/tools/devchain/token.js';
import { PAYER, PAYER_FUNDS, SETTLER_KEY } from '../../test/helpers/chain-world.js';

/** Base's block time, the one the deferred windows run at. */
export const BASE_BLOCK_TIME_SECONDS = 2;

export interface BlockTimeChain {
  readonly chain: DevChain;
  readonly admin: DevChainClient;
  balance(owner: Address): Promise<bigint>;
  stop(): Promise<void>;
}

export async function startBlockTimeChain(blockTimeSeconds = BASE_BLOCK_TIME_SECONDS): Promise<BlockTimeChain> {
  const chain = await startAnvil({ chainId: 8453, blockTimeSeconds });
  try {
    const admin = createDevChainClient(chain, SETTLER_KEY);
    await installTestUsdc(admin, { at: BASE_USDC });
    await installMulticall3(admin);
    // Waits for the next block: up to one block time.
    await mintTestUsdc(admin, { token: BASE_USDC, to: PAYER, amount: PAYER_FUNDS });
    return { chain, admin, balance: (owner) => usdcBalance(admin, BASE_USDC, owner), stop: () => chain.stop() };
  } catch (err) {
    await chain.stop();
    throw err;
  }
}
