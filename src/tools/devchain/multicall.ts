/**
 * Multicall3 on a dev chain: ./contracts/Multicall3.sol (the part of Multicall3 the gateway
 * calls, same ABI), compiled with the bundled solc and planted at Multicall3's canonical address
 * with anvil_setCode, where Base and most EVM chains have the real one.
 */
import { readFileSync } from 'node:fs';
import { testActions, type Address } from 'viem';
import { compileSolidity, type ContractArtifact, type SendingClient } from './token.js';

/** Multicall3's address on Base and most EVM chains (the same deployer and nonce everywhere). */
export const MULTICALL3_ADDRESS: Address = '0xcA11bde05977b3631167028862bE2a173976CA11';

let multicall3: ContractArtifact | undefined;

/** Compiles Multicall3.sol once per process. */
export function compileMulticall3(): ContractArtifact {
  multicall3 ??= compileSolidity(readFileSync(new URL('./contracts/Multicall3.sol', import.meta.url), 'utf8'), 'Multicall3');
  return multicall3;
}

/** Plants Multicall3 at its canonical address (it keeps no state, so no constructor is needed). */
export async function installMulticall3(client: SendingClient): Promise<Address> {
  await testActions({ mode: 'anvil' })(client).setCode({ address: MULTICALL3_ADDRESS, bytecode: compileMulticall3().deployedBytecode });
  return MULTICALL3_ADDRESS;
}
