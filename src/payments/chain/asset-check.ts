/**
 * Start-up check of each asset against its chain: the EIP-712 name and version clients sign with
 * must be the token's own, or every signature fails verification on chain; and the decimals
 * prices were converted with must be the token's. A mismatch is a warning in the log (the chain
 * may be briefly unreachable at start, and a config problem must not stop a running fleet).
 */
import { erc20Abi, parseAbi } from 'viem';
import type { AssetConfig } from '../../config/types.js';
import type { ChainClient } from './client.js';

const eip712Abi = parseAbi(['function name() view returns (string)', 'function version() view returns (string)']);

/** Problems with `asset` as its chain reports it; an unreadable field is a problem too. */
export async function checkAssetMetadata(client: ChainClient, asset: AssetConfig): Promise<string[]> {
  const read = <T>(p: Promise<T>) => p.then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err }));
  const [name, version, decimals] = await Promise.all([
    read(client.readContract({ address: asset.address, abi: eip712Abi, functionName: 'name' })),
    read(client.readContract({ address: asset.address, abi: eip712Abi, functionName: 'version' })),
    read(client.readContract({ address: asset.address, abi: erc20Abi, functionName: 'decimals' })),
  ]);
  const problems: string[] = [];
  const compare = (field: string, got: typeof name | typeof decimals, want: string | number) => {
    if (!got.ok) problems.push(`${asset.id}: could not read ${field}() from ${asset.address}`);
    else if (got.value !== want) problems.push(`${asset.id}: the token's ${field}() is ${JSON.stringify(got.value)}, the config says ${JSON.stringify(want)}`);
  };
  compare('name', name, asset.eip712Name);
  compare('version', version, asset.eip712Version);
  compare('decimals', decimals, asset.decimals);
  return problems;
}
