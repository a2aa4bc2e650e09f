/** The start-up check of an asset's EIP-712 name, version and decimals against the real token. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AssetConfig } from '../../src/config/types.js';
import { BASE_USDC } from '../../src/tools/devchain/token.js';
import { checkAssetMetadata } from '../../src/payments/chain/asset-check.js';
import { createChainClient } from '../../src/payments/chain/client.js';
import { startChainWorld, type ChainWorld } from '../helpers/chain-world.js';
import { BASE } from '../helpers/options.js';

let world: ChainWorld;
beforeAll(async () => {
  world = await startChainWorld();
});
afterAll(async () => {
  await world?.stop();
});

it('accepts the token as configured and names each field that differs', async () => {
  const network = { ...BASE, rpc: [world.chain.rpcUrl] };
  const client = createChainClient(network);
  const asset: AssetConfig = { id: 'usdc@base', network, address: BASE_USDC, eip712Name: 'USD Coin', eip712Version: '2', decimals: 6, symbol: 'USDC' };
  expect(await checkAssetMetadata(client, asset)).toEqual([]);
  expect(await checkAssetMetadata(client, { ...asset, eip712Name: 'USDC', decimals: 18 })).toEqual([
    `usdc@base: the token's name() is "USD Coin", the config says "USDC"`,
    `usdc@base: the token's decimals() is 6, the config says 18`,
  ]);
  expect(await checkAssetMetadata(client, { ...asset, address: '0x0000000000000000000000000000000000000001' })).toEqual([
    'usdc@base: could not read name() from 0x0000000000000000000000000000000000000001',
    'usdc@base: could not read version() from 0x0000000000000000000000000000000000000001',
    'usdc@base: could not read decimals() from 0x0000000000000000000000000000000000000001',
  ]);
});
