/** The assets a route can charge in: built-in USDC per known chain, the declared `assets`, and checks of asset ids. */
import { getAddress } from 'viem';
import { formatPath } from './format-path.js';
import { KNOWN_CHAINS } from './known-networks.js';
import type { RawConfig } from './schema.js';
import type { AssetConfig, NetworkConfig } from './types.js';

/** Built-in `usdc@<network>` for every configured network on a known chain, then declared assets over them. */
export function compileAssets(raw: RawConfig, networks: ReadonlyMap<string, NetworkConfig>, problems: string[]): Map<string, AssetConfig> {
  const assets = new Map<string, AssetConfig>();
  for (const network of networks.values()) {
    const usdc = KNOWN_CHAINS.get(network.chainId)?.usdc;
    if (!usdc) continue;
    assets.set(`usdc@${network.name}`, {
      id: `usdc@${network.name}`,
      network,
      address: getAddress(usdc.address),
      eip712Name: usdc.eip712Name,
      eip712Version: usdc.eip712Version,
      decimals: usdc.decimals,
      symbol: 'USDC',
    });
  }
  raw.assets.forEach((a, i) => {
    const network = networks.get(a.network);
    if (!network) {
      problems.push(`assets[${i}].network: unknown network "${a.network}" (declare it under networks)`);
      return;
    }
    if (!a.id.endsWith(`@${a.network}`)) problems.push(`assets[${i}].id: "${a.id}" must end with "@${a.network}"`);
    assets.set(a.id, {
      id: a.id,
      network,
      address: getAddress(a.address),
      eip712Name: a.name,
      eip712Version: a.version,
      decimals: a.decimals,
      symbol: a.symbol ?? (a.id.split('@')[0] ?? a.id).toUpperCase(),
    });
  });
  return assets;
}

/** Pushes a problem for each id in `ids` (at `path`) that names no compiled asset. */
export function checkAssetIds(ids: readonly string[], assets: ReadonlyMap<string, AssetConfig>, path: (string | number)[], problems: string[]): void {
  ids.forEach((id, i) => {
    if (!assets.has(id)) problems.push(`${formatPath([...path, i])}: unknown asset "${id}"${assetHint(assets)}`);
  });
}

/** The tail of an unknown-asset problem: the ids there are, or how to get one. */
export function assetHint(assets: ReadonlyMap<string, AssetConfig>): string {
  return assets.size === 0 ? ' (no assets: declare one under assets, or use a network on a known chain)' : ` (known: ${[...assets.keys()].join(', ')})`;
}
