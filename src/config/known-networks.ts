/**
 * What the official x402 packages know about chains, so operators need not repeat it:
 * the x402 v1 network name of each chain id, and the USDC each chain's clients pay by default.
 *
 * Sources: `x402@1.2.0` (v1 network enum and its USDC table) and `@x402/evm@2.27.0` (`DEFAULT_ASSETS`).
 * Only EIP-3009 tokens are listed: the gateway's exact scheme speaks EIP-3009, not Permit2.
 */
import { evmChainId } from '../protocol/types.js';
import type { Address } from './types.js';

export interface KnownUsdc {
  readonly address: Address;
  readonly eip712Name: string;
  readonly eip712Version: string;
  readonly decimals: number;
}

export interface KnownChain {
  /** The legacy v1 name; only the names the legacy `x402` enum accepts, so v1 clients parse the body. */
  readonly v1Name: string | undefined;
  readonly usdc: KnownUsdc | undefined;
  /** The block explorer's origin, for links to a transaction (`<explorer>/tx/<hash>`), where we know it. */
  readonly explorer?: string;
}

const usdc = (address: Address, eip712Name: string, eip712Version = '2'): KnownUsdc => ({
  address,
  eip712Name,
  eip712Version,
  decimals: 6,
});

/** Keyed by EVM chain id. */
export const KNOWN_CHAINS: ReadonlyMap<number, KnownChain> = new Map<number, KnownChain>([
  [8453, { v1Name: 'base', usdc: usdc('0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', 'USD Coin'), explorer: 'https://basescan.org' }],
  [84532, { v1Name: 'base-sepolia', usdc: usdc('0x036CbD53842c5426634e7929541eC2318f3dCF7e', 'USDC'), explorer: 'https://sepolia.basescan.org' }],
  [1, { v1Name: undefined, usdc: usdc('0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48', 'USD Coin'), explorer: 'https://etherscan.io' }],
  [137, { v1Name: 'polygon', usdc: usdc('0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359', 'USD Coin'), explorer: 'https://polygonscan.com' }],
  [80002, { v1Name: 'polygon-amoy', usdc: usdc('0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582', 'USDC') }],
  [43114, { v1Name: 'avalanche', usdc: usdc('0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E', 'USD Coin') }],
  [43113, { v1Name: 'avalanche-fuji', usdc: usdc('0x5425890298aed601595a70AB815c96711a31Bc65', 'USD Coin') }],
  [42161, { v1Name: undefined, usdc: usdc('0xaf88d065e77c8cC2239327C5EDb3A432268e5831', 'USD Coin'), explorer: 'https://arbiscan.io' }],
  [421614, { v1Name: undefined, usdc: usdc('0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d', 'USD Coin') }],
  [1329, { v1Name: 'sei', usdc: usdc('0xe15fC38F6D8c56aF07bbCBe3BAf5708A2Bf42392', 'USDC') }],
  [1328, { v1Name: 'sei-testnet', usdc: usdc('0x4fCF1784B31630811181f670Aea7A7bEF803eaED', 'USDC') }],
  [4689, { v1Name: 'iotex', usdc: usdc('0xcdf79194c6c285077a58da47641d4dbe51f63542', 'Bridged USDC') }],
  [3338, { v1Name: 'peaq', usdc: usdc('0xbbA60da06c2c5424f03f7434542280FCAd453d10', 'USDC') }],
  [2741, { v1Name: 'abstract', usdc: usdc('0x84a71ccd554cc1b02749b35d22f684cc8ec987e1', 'Bridged USDC') }],
  [11124, { v1Name: 'abstract-testnet', usdc: usdc('0xe4C7fBB0a626ed208021ccabA6Be1566905E2dFc', 'Bridged USDC') }],
  [1514, { v1Name: 'story', usdc: usdc('0xF1815bd50389c46847f0Bda824eC8da914045D14', 'Bridged USDC') }],
  [41923, { v1Name: 'educhain', usdc: usdc('0x12a272A581feE5577A5dFa371afEB4b2F3a8C2F8', 'Bridged USDC (Stargate)') }],
  [
    324705682,
    { v1Name: 'skale-base-sepolia', usdc: usdc('0x2e08028E3C4c2356572E096d8EF835cD5C6030bD', 'Bridged USDC (SKALE Bridge)') },
  ],
  [143, { v1Name: undefined, usdc: usdc('0x754704Bc059F8C67012fEd69BC8A327a5aafb603', 'USDC') }],
  [42220, { v1Name: undefined, usdc: usdc('0xcebA9300f2b948710d2653dD7B07f33A8B32118C', 'USDC') }],
  [11142220, { v1Name: undefined, usdc: usdc('0x01C5C0122039549AD1493B8220cABEdD739BC44E', 'USDC') }],
]);

/** `<explorer>/tx/<hash>` for a CAIP-2 network the table knows an explorer for; else undefined. */
export function explorerTxUrl(caip2: string, txHash: string): string | undefined {
  const chainId = evmChainId(caip2);
  const explorer = chainId === undefined ? undefined : KNOWN_CHAINS.get(chainId)?.explorer;
  if (explorer === undefined || !/^0x[0-9a-fA-F]{64}$/.test(txHash)) return undefined;
  return `${explorer}/tx/${txHash}`;
}
