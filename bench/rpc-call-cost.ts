/**
 * CPU per JSON-RPC call through viem's `http` transport (global fetch) and through the gateway's
 * transport (`payments/chain/rpc-connections.ts`: a viem `custom` transport over an undici Pool), on a
 * fresh anvil; a raw undici `eth_call` shows the floor. Alternating rounds; the last one counts.
 *
 *   npx tsx bench/rpc-call-cost.ts
 */
import { createPublicClient, http } from 'viem';
import { Pool } from 'undici';
import { ANVIL_DEV_KEYS, devChainDefinition, startAnvil } from '../src/tools/devchain/anvil.js';
import { privateKeyToAddress } from 'viem/accounts';
import { eip3009Abi } from '../src/payments/exact-evm/abi.js';
import { RpcConnections } from '../src/payments/chain/rpc-connections.js';

const CALLS = 2_000;
const chain = await startAnvil();
const account = privateKeyToAddress(ANVIL_DEV_KEYS[0]);
const definition = devChainDefinition(chain);
const connections = new RpcConnections();
const viaFetch = createPublicClient({ chain: definition, transport: http(chain.rpcUrl, { retryCount: 0 }), batch: { multicall: false } });
const viaPool = createPublicClient({ chain: definition, transport: connections.transport(chain.rpcUrl, 5_000), batch: { multicall: false } });
const pool = new Pool(new URL(chain.rpcUrl).origin);
// The identity precompile answers with the calldata itself: a 36-byte answer that decodes as a
// uint256, so a contract read costs what a real one does, without deploying a token.
const IDENTITY_PRECOMPILE = '0x0000000000000000000000000000000000000004';
const read = { address: IDENTITY_PRECOMPILE, abi: eip3009Abi, functionName: 'balanceOf', args: [account] } as const;
let id = 0;
const raw = async () => {
  const res = await pool.request({
    path: '/',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'eth_getBalance', params: [account, 'latest'] }),
  });
  return res.body.json();
};

async function cpuPerCall(call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 200; i++) await call();
  const before = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await call();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / CALLS;
}

const rows: [string, () => Promise<unknown>][] = [
  ['viem http transport (global fetch): getBalance', () => viaFetch.getBalance({ address: account })],
  ['gateway transport (undici Pool): getBalance', () => viaPool.getBalance({ address: account })],
  ['raw undici Pool.request: eth_getBalance', raw],
  ['viem http transport: readContract', () => viaFetch.readContract(read)],
  ['gateway transport: readContract', () => viaPool.readContract(read)],
];
const results = new Map<string, number>();
for (let round = 0; round < 2; round++) for (const [name, call] of rows) results.set(name, await cpuPerCall(call));
for (const [name, us] of results) console.log(`${us.toFixed(0).padStart(5)} µs CPU per call  ${name}`);
await Promise.all([pool.close(), connections.close(), chain.stop()]);
