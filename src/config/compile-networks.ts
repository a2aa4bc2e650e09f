/** The `networks` section compiled: chain id, RPC list, verify and settle modes checked against each other. */
import { compileFacilitators } from './compile-facilitators.js';
import { KNOWN_CHAINS } from './known-networks.js';
import type { RawConfig } from './schema.js';
import type { Address, NetworkConfig, SettleConfig } from './types.js';

/** Each declared network, keyed by its name; problems are pushed with their YAML path. */
export function compileNetworks(raw: RawConfig, problems: string[]): Map<string, NetworkConfig> {
  const networks = new Map<string, NetworkConfig>();
  for (const [name, n] of Object.entries(raw.networks)) {
    const chainId = Number(n.network.slice('eip155:'.length));
    if (!Number.isSafeInteger(chainId)) {
      problems.push(`networks.${name}.network: chain id is too large`);
      continue;
    }
    const rpc = n.rpc === undefined ? [] : Array.isArray(n.rpc) ? n.rpc : [n.rpc];
    const verify = n.verify ?? (n.settle.mode === 'facilitator' && rpc.length === 0 ? 'facilitator' : 'local');
    if (rpc.length === 0 && (verify === 'local' || n.settle.mode === 'local')) {
      problems.push(`networks.${name}.rpc: required to ${n.settle.mode === 'local' ? 'settle' : 'verify payments'} locally`);
    }
    if (verify === 'facilitator' && n.settle.mode !== 'facilitator') {
      problems.push(`networks.${name}.verify: "facilitator" needs settle.mode: facilitator`);
    }
    const settle: SettleConfig =
      n.settle.mode === 'local'
        ? {
            mode: 'local',
            privateKey: n.settle.privateKey as `0x${string}`,
            receiptTimeoutMs: n.settle.receiptTimeoutMs,
            maxGas: n.settle.maxGas,
            revertPenaltySeconds: n.settle.revertPenaltySeconds,
            replaceAfterSeconds: n.settle.replaceAfterSeconds,
            minBalanceWei: n.settle.minBalance === undefined ? undefined : nativeToWei(n.settle.minBalance),
            batch: n.settle.batch,
          }
        : {
            mode: 'facilitator',
            facilitators: compileFacilitators(name, n.settle, problems),
          };
    networks.set(name, {
      name,
      caip2: n.network as `eip155:${number}`,
      chainId,
      v1Name: KNOWN_CHAINS.get(chainId)?.v1Name,
      rpc,
      verify,
      settle,
      multicall3: n.multicall3 === false ? undefined : (n.multicall3 as Address),
      proofConfirmations: n.proof.confirmations,
      proofMaxAgeSeconds: n.proof.maxAgeSeconds,
    });
  }
  return networks;
}

/** `"0.002 ETH"` (the schema checked the form: at most 18 decimals) in wei, as a decimal string. */
function nativeToWei(amount: string): string {
  const [whole = '0', fraction = ''] = amount.replace(/ ETH$/, '').split('.');
  return BigInt(whole + fraction.padEnd(18, '0')).toString();
}
