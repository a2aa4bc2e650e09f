/**
 * Builds the verifier, settler and proof checker of each configured network from its config:
 * local viem checks (behind the cache) or a facilitator list, a local key or a facilitator to
 * settle. One chain client per network, one HTTP pool for all facilitators.
 *
 * The composition root of the payment side: the only place concrete payment adapters are made
 * (server.ts makes one of these; tests may pass their own `PaymentBackendSource`).
 *
 * The cache outlives config reloads: a network whose config did not change keeps its backends,
 * so the verification cache carries over. A changed network gets new backends, but its settler
 * shares the nonce allocator of every other settler with the same key on the same chain, so two
 * settlers side by side during a reload never pick the same transaction nonce.
 */
import { privateKeyToAddress } from 'viem/accounts';
import type { AssetConfig, Config, NetworkConfig, SettleConfig } from './config/types.js';
import { CachedVerifier, type CachedVerifierCounters } from './payments/cached-verifier.js';
import { checkAssetMetadata } from './payments/chain/asset-check.js';
import { createChainClient, sendTransport, type ChainClient } from './payments/chain/client.js';
import { NonceAllocator } from './payments/exact-evm/nonce-allocator.js';
import type { ReconcilerOptions, SettlementReconciler } from './payments/exact-evm/reconciler.js';
import { RpcConnections } from './payments/chain/rpc-connections.js';
import { LocalExactEvmSettler } from './payments/exact-evm/settle.js';
import { SettlerBalanceWatch, type SettlerBalanceReading } from './payments/exact-evm/settler-balance.js';
import { LocalExactEvmVerifier } from './payments/exact-evm/verify.js';
import { createFacilitatorDispatcher, FacilitatorClient } from './payments/facilitator/client.js';
import { expectedFacilitatorKinds } from './payments/facilitator/request.js';
import { FacilitatorSettler } from './payments/facilitator/settler.js';
import { checkFacilitatorSupport, type FacilitatorSupportReport } from './payments/facilitator/support.js';
import { FacilitatorVerifier } from './payments/facilitator/verifier.js';
import type { Clock, ProofChecker, SettlementLog, SettlementQueue, Settler, Verifier } from './payments/ports.js';
import { AuthorizationReconciler, type AuthorizationReconcilerOptions } from './payments/exact-evm/authorization-reconciler.js';
import type { BatcherOptions, BatchTerms, SettlementBatcher } from './payments/exact-evm/batcher.js';
import { DEFAULT_SETTLE_BATCH } from './config/schema.js';
import { TxProofChecker } from './payments/tx-proof.js';

export interface PaymentBackends {
  /** Keyed by network name, like everything below. */
  readonly verifiers: ReadonlyMap<string, Verifier>;
  readonly settlers: ReadonlyMap<string, Settler>;
  readonly proofs: ReadonlyMap<string, ProofChecker>;
}

/** What the process root needs from the payment side; PaymentBackendCache is the real one. */
export interface PaymentBackendSource {
  backendsFor(config: Config): PaymentBackends;
  /** Asks each facilitator of a network `config` adds over `previous` (every one, without) what it supports. */
  checkFacilitators(config: Config, previous?: Config): Promise<{ network: string; reports: FacilitatorSupportReport[] }[]>;
  /** Checks each asset `config` adds over `previous` against its chain; the problems found. */
  checkAssets(config: Config, previous?: Config): Promise<string[]>;
  /** The latest gas balance reading of every settling account. */
  settlerBalances(): SettlerBalanceReading[];
  /** Settles everything `settlement: deferred` queued, until `deadlineMs` (unix ms); how many are left. */
  flushDeferred?(deadlineMs: number): Promise<number>;
  close(): Promise<void>;
}

interface NetworkBackends {
  readonly verifier: Verifier | undefined;
  readonly settler: Settler | undefined;
  readonly proof: ProofChecker | undefined;
  readonly facilitatorCheck: (() => Promise<FacilitatorSupportReport[]>) | undefined;
}

/** The shared store's part in local settlement: its log and queue, and how this replica's reconcilers and batchers report. */
export interface SettlementWiring {
  readonly log: SettlementLog & SettlementQueue;
  readonly reconciler: Pick<ReconcilerOptions, 'holder' | 'intervalMs' | 'onOutcome' | 'onError' | 'onDeferredItem'>;
  /** `settlement: deferred`'s batchers (one per settling key, beside its reconciler). */
  readonly batcher?: Pick<BatcherOptions, 'onItem' | 'onBatch' | 'onError'>;
  /**
   * Pending rows of networks settled through a facilitator are finished from the chain's state of
   * their authorizations (authorization-reconciler.ts), on networks with an RPC.
   */
  readonly authorizations?: Pick<AuthorizationReconcilerOptions, 'ledger' | 'intervalMs' | 'onOutcome' | 'onUnexplained' | 'onError'>;
  /** Told of each reconciler started, for the metrics. */
  readonly onReconciler?: (reconciler: SettlementReconciler) => void;
  /** Each reading of a settling account's gas balance, and whether it crossed `settle.minBalance`. */
  readonly onSettlerBalance?: (reading: SettlerBalanceReading, crossed: boolean) => void;
  /** A balance could not be read. */
  readonly onSettlerBalanceError?: (err: unknown) => void;
}

export class PaymentBackendCache implements PaymentBackendSource {
  readonly #clock: Clock;
  readonly #onCache: (counters: CachedVerifierCounters) => void;
  readonly #dispatcher = createFacilitatorDispatcher();
  /** JSON-RPC over pooled connections, shared by every chain client and settler. */
  readonly #rpc = new RpcConnections();
  /** Keyed by the network's whole config: a changed RPC, key or facilitator list builds anew. */
  readonly #byConfig = new Map<string, NetworkBackends>();
  /** The latest chain client of each chain id, for start-up checks. */
  readonly #clients = new Map<number, ChainClient>();
  /** One nonce allocator per (chain, settling key). */
  readonly #nonces = new Map<string, NonceAllocator>();
  readonly #settlement: SettlementWiring | undefined;
  /**
   * One reconciler per (chain, settling key), made with the first settler of the key and kept
   * across reloads; a reload that changes the key's RPC keeps the first one's connections.
   */
  readonly #reconcilers = new Map<string, SettlementReconciler>();
  /** One batcher per (chain, settling key), like the reconcilers. */
  readonly #batchers = new Map<string, SettlementBatcher>();
  /** One authorization reconciler per network settled through a facilitator (CAIP-2), kept across reloads like the reconcilers. */
  readonly #authorizations = new Map<string, AuthorizationReconciler>();
  /** One gas balance watch per (chain, settling key), kept across reloads (a reload may move its floor). */
  readonly #balances = new Map<string, SettlerBalanceWatch>();

  /** `onCache` is told of each verification cache built, for the metrics. */
  constructor(clock: Clock, onCache: (counters: CachedVerifierCounters) => void = () => {}, settlement?: SettlementWiring) {
    this.#clock = clock;
    this.#settlement = settlement;
    this.#onCache = onCache;
  }

  backendsFor(config: Config): PaymentBackends {
    const verifiers = new Map<string, Verifier>();
    const settlers = new Map<string, Settler>();
    const proofs = new Map<string, ProofChecker>();
    const current = new Set<string>();
    for (const network of config.networks.values()) {
      current.add(configKey(network));
      const b = this.#network(network);
      if (b.verifier) verifiers.set(network.name, b.verifier);
      if (b.settler) settlers.set(network.name, b.settler);
      if (b.proof) proofs.set(network.name, b.proof);
    }
    // Backends of networks the config no longer has are not kept for later reloads (their
    // caches would pile up); an app still draining holds its own references until it is done.
    for (const key of this.#byConfig.keys()) if (!current.has(key)) this.#byConfig.delete(key);
    return { verifiers, settlers, proofs };
  }

  /** Asks each facilitator of `config` whether it supports the networks it serves. */
  checkFacilitators(config: Config, previous?: Config): Promise<{ network: string; reports: FacilitatorSupportReport[] }[]> {
    const known = new Set(previous ? [...previous.networks.values()].map(configKey) : []);
    const added = [...config.networks.values()].filter((network) => !known.has(configKey(network)));
    const checks = added.flatMap((network) => {
      const check = this.#network(network).facilitatorCheck;
      return check ? [check().then((reports) => ({ network: network.name, reports }))] : [];
    });
    return Promise.all(checks);
  }

  /** Checks every asset on a network with an RPC against its chain; see `checkAssetMetadata`. */
  async checkAssets(config: Config, previous?: Config): Promise<string[]> {
    const known = new Set(previous ? [...previous.assets.values()].map(assetKey) : []);
    const checks = [...config.assets.values()].filter((asset) => !known.has(assetKey(asset))).flatMap((asset) => {
      const client = this.#clients.get(asset.network.chainId);
      return client ? [checkAssetMetadata(client, asset)] : [];
    });
    return (await Promise.all(checks)).flat();
  }

  /** The latest gas balance reading of every settling account. */
  settlerBalances(): SettlerBalanceReading[] {
    return [...this.#balances.values()].flatMap((watch) => (watch.latest ? [watch.latest] : []));
  }

  /**
   * The drain's last step for `settlement: deferred`: every batcher settles what is queued, due or
   * not, until the queue is empty or `deadlineMs` (unix ms). Resolves with how many are left.
   */
  async flushDeferred(deadlineMs: number): Promise<number> {
    const left = await Promise.all([...this.#batchers.values()].map((batcher) => batcher.flush(deadlineMs)));
    return left.reduce((sum, n) => sum + n, 0);
  }

  async close(): Promise<void> {
    const tasks = [...this.#balances.values(), ...this.#reconcilers.values(), ...this.#batchers.values(), ...this.#authorizations.values()];
    await Promise.all(tasks.map((task) => task.stop()));
    await Promise.all([this.#dispatcher.close(), this.#rpc.close()]);
  }

  /** Starts the authorization reconciler of `network`'s rows, once (the first config's RPC is kept, as for the reconcilers). */
  #reconcileAuthorizations(network: NetworkConfig, client: ChainClient): void {
    const wiring = this.#settlement;
    if (wiring?.authorizations === undefined || this.#authorizations.has(network.caip2)) return;
    const reconciler = new AuthorizationReconciler({ ...wiring.authorizations, client, network: network.caip2, clock: this.#clock, holder: wiring.reconciler.holder });
    this.#authorizations.set(network.caip2, reconciler);
    reconciler.start();
  }

  #watchBalance(key: string, network: NetworkConfig, client: ChainClient, address: `0x${string}`): void {
    const onReading = this.#settlement?.onSettlerBalance;
    if (network.settle.mode !== 'local' || onReading === undefined) return;
    const minBalanceWei = network.settle.minBalanceWei === undefined ? undefined : BigInt(network.settle.minBalanceWei);
    const existing = this.#balances.get(key);
    if (existing) {
      existing.minBalanceWei = minBalanceWei;
      return;
    }
    const watch = new SettlerBalanceWatch({ client, network: network.name, address, minBalanceWei, onReading, onError: (err) => this.#settlement?.onSettlerBalanceError?.(err) });
    this.#balances.set(key, watch);
    watch.start();
  }

  #network(network: NetworkConfig): NetworkBackends {
    const key = configKey(network);
    let b = this.#byConfig.get(key);
    if (!b) {
      b = this.#build(network);
      this.#byConfig.set(key, b);
    }
    return b;
  }

  #build(network: NetworkConfig): NetworkBackends {
    const clock = this.#clock;
    const client = network.rpc.length > 0 ? createChainClient(network, { connections: this.#rpc }) : undefined;
    if (client) this.#clients.set(network.chainId, client);
    const facilitators =
      network.settle.mode === 'facilitator' ? network.settle.facilitators.map((f) => new FacilitatorClient(f, { dispatcher: this.#dispatcher, clock })) : [];

    // Whatever they are used for (verifying, settling or both), facilitators are asked at start-up.
    const facilitatorCheck = facilitators.length > 0 ? () => checkFacilitatorSupport(facilitators, expectedFacilitatorKinds(network)) : undefined;

    let settler: Settler | undefined;
    let local: LocalExactEvmSettler | undefined;
    if (network.settle.mode === 'local' && client) {
      const key = `${network.chainId}:${privateKeyToAddress(network.settle.privateKey)}`;
      let nonces = this.#nonces.get(key);
      if (!nonces) {
        nonces = new NonceAllocator(() => clock.nowMs());
        this.#nonces.set(key, nonces);
      }
      local = new LocalExactEvmSettler({
        network,
        client,
        privateKey: network.settle.privateKey,
        clock,
        receiptTimeoutMs: network.settle.receiptTimeoutMs,
        maxGas: BigInt(network.settle.maxGas),
        nonces,
        sendTransport: sendTransport(network, this.#rpc),
        ...(this.#settlement ? { log: this.#settlement.log } : {}),
      });
      settler = local;
      this.#watchBalance(key, network, client, local.address);
      if (this.#settlement && !this.#reconcilers.has(key)) {
        const reconciler = local.reconciler({ ...this.#settlement.reconciler, queue: this.#settlement.log, replaceAfterMs: network.settle.replaceAfterSeconds * 1000 });
        if (reconciler) {
          this.#reconcilers.set(key, reconciler);
          this.#settlement.onReconciler?.(reconciler);
          reconciler.start();
        }
        // Batches go through Multicall3; a network without one has no deferred routes (parse.ts).
        const batcher = network.multicall3 === undefined ? undefined : local.batcher({
          ...this.#settlement.batcher,
          ...batchTerms(network.settle),
          queue: this.#settlement.log,
          multicall3: network.multicall3,
          holder: this.#settlement.reconciler.holder,
        });
        if (batcher) {
          this.#batchers.set(key, batcher);
          batcher.start();
        }
      } else {
        // The key's batcher outlives the config it was made with; deferred routes decide what to
        // queue by the reloaded settle.batch (defer-policy.ts), so it must flush by the same terms.
        this.#batchers.get(key)?.retune(batchTerms(network.settle));
      }
    } else if (facilitators.length > 0) {
      settler = new FacilitatorSettler(facilitators);
      if (client) this.#reconcileAuthorizations(network, client);
    }

    let verifier: Verifier | undefined;
    if (network.verify === 'local' && client) {
      // Settling locally, the gateway pays the gas: a contract payer's settlement is estimated
      // at verification against the cap, and its ERC-1271 check may use no more than the cap.
      const gasBound =
        local === undefined || network.settle.mode !== 'local'
          ? {}
          : { erc1271GasLimit: BigInt(network.settle.maxGas), settlementGas: local.checkGas.bind(local) };
      const multicall3 = network.multicall3 === undefined ? {} : { multicall3: network.multicall3 };
      const cached = new CachedVerifier(new LocalExactEvmVerifier({ clock, client, ...gasBound, ...multicall3 }), { clock });
      this.#onCache(cached.counters);
      verifier = cached;
    } else if (facilitators.length > 0) {
      verifier = new FacilitatorVerifier(facilitators);
    }

    return { verifier, settler, proof: client ? new TxProofChecker({ client, clock }) : undefined, facilitatorCheck };
  }
}

/** A network's whole config as a key: a changed RPC, key or facilitator list builds anew. */
/** An asset as the chain check sees it: the same id on another address or chain is another asset. */
function assetKey(asset: AssetConfig): string {
  return JSON.stringify([asset.id, asset.network.chainId, asset.address, asset.eip712Name, asset.eip712Version, asset.decimals]);
}

/** The batcher's terms from a local settlement's `settle.batch`, or the defaults. */
function batchTerms(settle: Extract<SettleConfig, { mode: 'local' }>): BatchTerms {
  const batch = settle.batch ?? DEFAULT_SETTLE_BATCH;
  return { maxSize: batch.maxSize, maxWaitMs: batch.maxWaitMs, maxGas: BigInt(batch.maxGas), marginSeconds: batch.marginSeconds };
}

function configKey(network: NetworkConfig): string {
  return JSON.stringify(network);
}
