/**
 * The demo's chain: anvil posing as Base (chain id 8453), TestUsdc planted at Base's USDC address
 * so the official x402 clients pay it with their built-in defaults, and a funded payer.
 *
 * Roles are anvil's public dev accounts: #0 settles (the gateway's key, pays gas), #1 pays,
 * #2 receives. They are public knowledge, which is what makes them fine here and nowhere else.
 */
import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { ANVIL_DEV_KEYS, createDevChainClient, DEFAULT_DEV_CHAIN_ID, startAnvil, type DevChain } from '../devchain/anvil.js';
import { installMulticall3 } from '../devchain/multicall.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, usdcBalance } from '../devchain/token.js';

/** What the demo payer starts with: 100 USDC, in atomic units. */
export const DEMO_PAYER_FUNDS = 100_000_000n;

export const DEMO_SETTLER_KEY_INDEX = 0;
export const DEMO_PAYER_KEY_INDEX = 1;
export const DEMO_PAY_TO_KEY_INDEX = 2;

export interface DemoChain {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly token: Address;
  readonly settlerKey: Hex;
  readonly settler: Address;
  readonly payerKey: Hex;
  readonly payer: Address;
  readonly payTo: Address;
  /** USDC balance in atomic units. */
  balanceOf(owner: Address): Promise<bigint>;
  stop(): Promise<void>;
}

/**
 * Starts anvil, installs the token and funds the payer. Failures after anvil is up stop it
 * before rethrowing, so the caller has nothing to clean up.
 */
export async function startDemoChain(): Promise<DemoChain> {
  const chain: DevChain = await startAnvil({ chainId: DEFAULT_DEV_CHAIN_ID });
  try {
    const settlerKey = ANVIL_DEV_KEYS[DEMO_SETTLER_KEY_INDEX];
    const payerKey = ANVIL_DEV_KEYS[DEMO_PAYER_KEY_INDEX];
    // Setup transactions come from the settler's key, all mined before the gateway (which has
    // its own nonce manager for that key) starts.
    const client = createDevChainClient(chain, settlerKey);
    const token = await installTestUsdc(client, { at: BASE_USDC });
    await installMulticall3(client);
    const payer = privateKeyToAccount(payerKey).address;
    await mintTestUsdc(client, { token, to: payer, amount: DEMO_PAYER_FUNDS });
    return {
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      token,
      settlerKey,
      settler: client.account.address,
      payerKey,
      payer,
      payTo: privateKeyToAccount(ANVIL_DEV_KEYS[DEMO_PAY_TO_KEY_INDEX]).address,
      balanceOf: (owner) => usdcBalance(client, token, owner),
      stop: () => chain.stop(),
    };
  } catch (err) {
    await chain.stop();
    throw err;
  }
}
