/**
 * A real chain for e2e tests: anvil at chain id 8453 with the compiled EIP-3009 token placed at
 * Base's USDC address (so the official clients' defaults apply unchanged) and Multicall3 at its
 * canonical address (as on Base), a funded payer, a settler with gas, and a payee; plus the
 * official v2 and v1 paying clients.
 */
import { x402Client, x402HTTPClient } from '@x402/core/client';
import type { PaymentRequired } from '@x402/core/types';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment } from '@x402/fetch';
import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createSigner, wrapFetchWithPayment as wrapFetchWithPaymentV1 } from 'x402-fetch';
import { ANVIL_DEV_KEYS, createDevChainClient, startAnvil, type DevChain, type DevChainClient } from '../../src/tools/devchain/anvil.js';
import { installMulticall3 } from '../../src/tools/devchain/multicall.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, usdcBalance } from '../../src/tools/devchain/token.js';

export const SETTLER_KEY = ANVIL_DEV_KEYS[0];
export const PAYER_KEY = ANVIL_DEV_KEYS[1];
export const PAYEE_KEY = ANVIL_DEV_KEYS[2];
/** Has ETH but no USDC. */
export const UNFUNDED_KEY = ANVIL_DEV_KEYS[5];
export const PAYER = privateKeyToAccount(PAYER_KEY).address;
export const PAYEE = privateKeyToAccount(PAYEE_KEY).address;

/** What the payer is minted: 100 USDC. */
export const PAYER_FUNDS = 100_000_000n;

export interface ChainWorld {
  readonly chain: DevChain;
  readonly admin: DevChainClient;
  balance(owner: Address): Promise<bigint>;
  /** Balances of payer and payee, for before/after comparisons. */
  balances(): Promise<{ payer: bigint; payee: bigint }>;
  /** Runs `fn` and returns how the payer's and payee's balances moved on chain. */
  moved(fn: () => Promise<void>): Promise<{ payer: bigint; payee: bigint }>;
  stop(): Promise<void>;
}

export async function startChainWorld(): Promise<ChainWorld> {
  const chain = await startAnvil({ chainId: 8453 });
  const admin = createDevChainClient(chain, SETTLER_KEY);
  await installTestUsdc(admin, { at: BASE_USDC });
  await installMulticall3(admin);
  await mintTestUsdc(admin, { token: BASE_USDC, to: PAYER, amount: PAYER_FUNDS });
  const balance = (owner: Address) => usdcBalance(admin, BASE_USDC, owner);
  const balances = async () => ({ payer: await balance(PAYER), payee: await balance(PAYEE) });
  return {
    chain,
    admin,
    balance,
    balances,
    moved: async (fn) => {
      const before = await balances();
      await fn();
      const after = await balances();
      return { payer: after.payer - before.payer, payee: after.payee - before.payee };
    },
    stop: () => chain.stop(),
  };
}

/** Network `base` on this chain, settled locally with SETTLER_KEY; `settleExtra` adds keys to `settle`. */
export function localSettlementBase(rpcUrl: string, settleExtra = ''): string {
  return `base: { network: "eip155:8453", rpc: "${rpcUrl}", settle: { mode: local, privateKey: "${SETTLER_KEY}"${settleExtra} } }`;
}

/** The official v2 client with default settings (spend controls on: default assets, $1 cap). */
export function v2Fetch(key: Hex = PAYER_KEY): typeof fetch {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(key) });
  return wrapFetchWithPayment(fetch, client) as typeof fetch;
}

/**
 * The official v1 client (`x402-fetch`) with its own signer for network "base" (chain 8453).
 * Signing an EIP-3009 authorization needs no RPC, so the signer's default endpoint is never used.
 */
export async function v1Fetch(key: Hex = PAYER_KEY): Promise<(input: string, init?: RequestInit) => Promise<Response>> {
  return wrapFetchWithPaymentV1(fetch, await createSigner('base', key));
}

/** The official v2 client's HTTP half, for tests that build, tamper with, or replay a payment header. */
export function v2HttpClient(key: Hex = PAYER_KEY): x402HTTPClient {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(key) });
  return new x402HTTPClient(client);
}

/** Fetches `url` unpaid and returns the decoded challenge. */
export async function challengeOf(http: x402HTTPClient, url: string, init?: RequestInit): Promise<PaymentRequired> {
  const res = await fetch(url, init);
  if (res.status !== 402) throw new Error(`expected 402 from ${url}, got ${res.status}`);
  return http.getPaymentRequiredResponse((name) => res.headers.get(name), await res.json());
}
