/**
 * One viem public client per network, over the network's RPC endpoints in order.
 *
 * The payment wiring (payment-backends.ts) makes one per network config, and again when a reload
 * changes that network's config, and hands it to the verifier, the settler and the tx-proof
 * checker; nothing here is a module-level singleton.
 */
import { createPublicClient, defineChain, fallback, type Chain, type PublicClient, type Transport } from 'viem';
import type { NetworkConfig } from '../../config/types.js';
import { neverReachedNode } from './rpc-errors.js';
import { RpcConnections } from './rpc-connections.js';

/** How long one JSON-RPC request may take before the next endpoint (or a retry) is tried. */
export const DEFAULT_RPC_TIMEOUT_MS = 5_000;
/**
 * Retries of a whole request over the endpoint list after every endpoint failed. Small: a verify
 * waits on it, and an unreachable chain must become a 503 quickly, not after seconds of back-off.
 */
export const DEFAULT_RPC_RETRY_COUNT = 1;
export const DEFAULT_RPC_RETRY_DELAY_MS = 50;
/**
 * How often viem polls for blocks and receipts. viem's default is 4 s (or the chain's block
 * time), which would make every settlement on a chain that mines on arrival (anvil) wait seconds.
 * Each pending settlement costs one request per interval, so remote chains may want more.
 */
export const DEFAULT_POLLING_INTERVAL_MS = 100;

export interface ChainClientOptions {
  readonly timeoutMs?: number;
  readonly retryCount?: number;
  readonly pollingIntervalMs?: number;
  /** The connection pools calls go through; a private set by default. */
  readonly connections?: RpcConnections;
}

/** The public client every chain reader in the gateway uses. */
export type ChainClient = PublicClient<Transport, Chain>;

/**
 * A minimal viem chain for the configured network. Deliberately no `contracts.multicall3`: a
 * fresh anvil has none, so nothing may depend on it (reads run as separate parallel calls).
 */
export function chainDefinition(network: NetworkConfig): Chain {
  return defineChain({
    id: network.chainId,
    name: network.name,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [...network.rpc] } },
  });
}

export interface RpcTransportOptions {
  readonly timeoutMs?: number;
  readonly retryCount?: number;
  /** The connection pools calls go through (see rpc-connections.ts); a private set by default. */
  readonly connections?: RpcConnections;
  /** viem `fallback`'s rule for when an error must not move on to the next endpoint. */
  readonly shouldThrow?: (error: Error) => boolean;
}

/**
 * The network's endpoints behind viem's `fallback`, tried in order. Each `http` transport does no
 * retries of its own (the fallback retries the whole list), so a dead single endpoint fails after
 * `retryCount + 1` attempts, not `(retryCount + 1)^2`.
 */
export function rpcTransport(network: NetworkConfig, options: RpcTransportOptions = {}): Transport {
  if (network.rpc.length === 0) {
    throw new Error(`network ${network.name} has no RPC endpoint; local verification and settlement need one`);
  }
  const timeout = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  const connections = options.connections ?? new RpcConnections();
  return fallback(
    network.rpc.map((url) => connections.transport(url, timeout)),
    {
      retryCount: options.retryCount ?? DEFAULT_RPC_RETRY_COUNT,
      retryDelay: DEFAULT_RPC_RETRY_DELAY_MS,
      ...(options.shouldThrow === undefined ? {} : { shouldThrow: options.shouldThrow }),
    },
  );
}

/**
 * Where a settler's raw transactions go: the network's endpoints in order, moving to the next one
 * only when the last provably never got the transaction (so one is never sent to two nodes after
 * the first may have accepted it), and no retries.
 */
export function sendTransport(network: NetworkConfig, connections?: RpcConnections): Transport {
  return rpcTransport(network, { retryCount: 0, shouldThrow: (error) => !neverReachedNode(error), ...(connections ? { connections } : {}) });
}

/** A public client for one network. Call once per network and share it. */
export function createChainClient(network: NetworkConfig, options: ChainClientOptions = {}): ChainClient {
  return createPublicClient({
    chain: chainDefinition(network),
    transport: rpcTransport(network, {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.retryCount === undefined ? {} : { retryCount: options.retryCount }),
      ...(options.connections === undefined ? {} : { connections: options.connections }),
    }),
    pollingInterval: options.pollingIntervalMs ?? DEFAULT_POLLING_INTERVAL_MS,
    batch: { multicall: false },
  });
}
