/**
 * The gateway's configuration after validation: frozen, precomputed, trusted.
 *
 * Everything here is derived once by `parseConfig` from the operator's YAML. Prices are atomic
 * bigint amounts, assets are resolved to addresses, routes are compiled. Code past the config
 * edge never re-checks any of it.
 */
import type { BlockList } from 'node:net';
import type { FailedPaymentLimits } from '../limits/failed-attempts.js';
import type { RateLimit } from '../limits/token-buckets.js';
import type { OptionWire } from '../protocol/option-wire.js';
import type { Address } from '../protocol/types.js';
import type { RouteTable } from '../routes/table.js';

// Files that take `Address` from here keep working; new code imports it from protocol/types.
export type { Address } from '../protocol/types.js';

/** `before`: settle, then forward. `after`: forward, settle only if the upstream answered < 400. */
export type SettlementTiming = 'before' | 'after' | 'deferred';

/** `enforce` charges; `shadow` lets the request pass free and counts what it would have paid. */
export type RouteMode = 'enforce' | 'shadow';

/** Callers who pass a priced route free. */
export interface Allowlist {
  /** Lower-case hex sha256 of each accepted API key. */
  readonly apiKeySha256: ReadonlySet<string>;
  /** Lower-case header the API key comes in. */
  readonly apiKeyHeader: string;
  /** Client addresses that pass free. */
  readonly cidrs: BlockList;
  /** As configured, for discovery and logs. */
  readonly cidrList: readonly string[];
}

/** What a request that matches no route gets: `deny` (404, the default) or `free` passage. */
export type UnmatchedPolicy = 'deny' | 'free';

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
}

/** The admin listener and its tokens (compared in constant time by http/admin-auth.ts). */
export interface AdminConfig extends ListenConfig {
  /** Guards everything on the admin port but /healthz, /readyz and /metrics; undefined: open. */
  readonly token: string | undefined;
  /** Guards /metrics; undefined: open (scrapers on the NetworkPolicy's allowed sources). */
  readonly metricsToken: string | undefined;
  /** Set explicitly to run a non-loopback admin listener without `token`. */
  readonly allowUnauthenticated: boolean;
}

export type SettleConfig =
  | {
      readonly mode: 'local';
      readonly privateKey: `0x${string}`;
      readonly receiptTimeoutMs: number;
      /**
       * Gas units: the most gas a settlement transaction may be given, and the ERC-1271 check's
       * bound. A number (a gas amount, not money): the config is keyed by its JSON in backends.ts.
       */
      readonly maxGas: number;
      /** How long a payer is refused after one of its settlements was mined and reverted; 0: never. */
      readonly revertPenaltySeconds: number;
      /** How long a settlement may wait unmined below the going fee before it is replaced with a higher one. */
      readonly replaceAfterSeconds: number;
      /** `settle.minBalance` in wei, as a decimal string (the config is keyed by its JSON); none: never low. */
      readonly minBalanceWei: string | undefined;
      /** `settle.batch`, for `settlement: deferred`; the loader always fills it (DEFAULT_SETTLE_BATCH when absent). */
      readonly batch?: BatchConfig;
    }
  | { readonly mode: 'facilitator'; readonly facilitators: readonly FacilitatorConfig[] };

export interface BatchConfig {
  readonly maxSize: number;
  readonly maxWaitMs: number;
  /** Gas units of one batch transaction. */
  readonly maxGas: number;
  readonly marginSeconds: number;
}

/** A `settlement: deferred` route's risk bounds (`deferred`), dollars as written. */
export interface DeferredTerms {
  readonly maxUnsettledPerPayer: string;
  readonly maxUnsettledTotal: string;
  readonly penaltySeconds: number;
}

export interface FacilitatorConfig {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** A Coinbase CDP API key: every call then carries a fresh JWT signed with it; none: no auth of ours. */
  readonly cdp?: CdpCredentials;
}

/** A CDP API key as configured (`cdp: { apiKeyId, apiKeySecret }`); the secret was checked at load (cdp-key.ts). */
export interface CdpCredentials {
  /** The key's id (`organizations/.../apiKeys/...` or a UUID): the JWT's `kid` and `sub`, and what messages name. */
  readonly apiKeyId: string;
  /** Never logged, never in a message. */
  readonly apiKeySecret: string;
}

/** One chain the gateway takes payments on. */
export interface NetworkConfig {
  /** The operator's name for it (the YAML key), e.g. `base`. */
  readonly name: string;
  /** CAIP-2 id, e.g. `eip155:8453`. */
  readonly caip2: `eip155:${number}`;
  readonly chainId: number;
  /** The x402 v1 network name (`base`, `base-sepolia`, ...), when the chain has one. */
  readonly v1Name: string | undefined;
  /** JSON-RPC endpoints, tried in order. */
  readonly rpc: readonly string[];
  /** How payments are verified: locally with viem (needs `rpc`) or by the facilitator. */
  readonly verify: 'local' | 'facilitator';
  readonly settle: SettleConfig;
  /** Multicall3's address on this chain (one call for a verification's reads), or none. */
  readonly multicall3: Address | undefined;
  /** Confirmations a tx-proof transfer needs before it counts. */
  readonly proofConfirmations: number;
  /** How old a tx-proof transfer may be, in seconds, by the gateway's clock against its block's timestamp. */
  readonly proofMaxAgeSeconds: number;
}

/** A token payments are made in; USDC on well-known chains is built in. */
export interface AssetConfig {
  /** `usdc@base`: symbol@network name. */
  readonly id: string;
  readonly network: NetworkConfig;
  readonly address: Address;
  /** EIP-712 domain name and version of the token (EIP-3009 signatures are bound to them). */
  readonly eip712Name: string;
  readonly eip712Version: string;
  readonly decimals: number;
  /** Display symbol for the informational headers, e.g. `USDC`. */
  readonly symbol: string;
}

export interface UpstreamConfig {
  readonly name: string;
  /** Origin plus an optional base path that forwarded paths are appended to. */
  readonly url: string;
  /** Until the upstream's status line and headers arrive. */
  readonly timeoutMs: number;
  /** Longest silence between two body bytes of an answer. */
  readonly idleTimeoutMs: number;
  /** The same for a `text/event-stream` answer; undefined: no limit (streams may idle for long). */
  readonly sseIdleTimeoutMs: number | undefined;
  /** Headers the gateway adds to every forwarded request (upstream secrets). */
  readonly headers: Readonly<Record<string, string>>;
}

/** The terms of one way to pay for a route: an exact amount of one asset to one address. */
export interface PaymentTerms {
  readonly scheme: 'exact';
  readonly asset: AssetConfig;
  /** Atomic units of the asset. */
  readonly amount: bigint;
  readonly payTo: Address;
  readonly maxTimeoutSeconds: number;
}

/** A payment option as the compiled config holds it: its terms and their wire form, built once (`withWire`). */
export interface PaymentOption extends PaymentTerms {
  readonly wire: OptionWire;
}

export type RoutePrice = { readonly kind: 'free' } | { readonly kind: 'priced'; readonly options: readonly PaymentOption[] };

export interface RouteConfig {
  /** Position in the config file; also the route's stable id in logs and metrics. */
  readonly index: number;
  /** The `match` string as written, e.g. `GET /v1/jobs/:id`. */
  readonly match: string;
  readonly upstream: UpstreamConfig;
  readonly price: RoutePrice;
  readonly description: string;
  readonly mimeType: string;
  readonly settlement: SettlementTiming;
  /** Under `settlement: deferred`, its risk bounds; undefined otherwise. */
  readonly deferred?: DeferredTerms;
  /**
   * Seconds an authorization must stay valid for this route to accept it: under `settlement:
   * after`, the upstream's timeout plus a margin to settle in (see `minimumAfterTimeout`); 0 under
   * `before`, where the verifier's own grace applies.
   */
  readonly minValiditySeconds: number;
  readonly mode: RouteMode;
  readonly allow: Allowlist | undefined;
  /**
   * Whether `X-Payment-Proof` (a plain transfer, with the sender's signature naming the hash and
   * this resource) is accepted here. Off by default: without it the header is refused unread.
   */
  readonly proof: boolean;
  /** The largest request body this route takes, when it sets its own; else `server.maxBodyBytes`. */
  readonly maxBodyBytes?: number;
}

export interface LimitsConfig {
  /** Per payer, per replica: paid requests forwarded and then not charged. */
  readonly unchargedForwards: RateLimit;
  /** Per authorization: how many times its answer may be served again without a second charge (redelivery.ts). */
  readonly redeliveries: number;
  /** Per replica: payment attempts that fail before settlement, per client address and per proven payer. */
  readonly failedPayments: FailedPaymentLimits;
}

/** Where the ledger lives: the embedded SQLite file, or a PostgreSQL server every replica shares. */
export type LedgerConfig =
  | {
      readonly store: 'sqlite';
      /** SQLite file path; `:memory:` keeps it in memory (tests only). */
      readonly path: string;
      /** How long rows of outcomes that moved no money are kept (`ledger.retention`). */
      readonly retentionMs: number;
    }
  | {
      readonly store: 'postgres';
      /** Connection URL; it carries the password, so it is never logged. */
      readonly url: string;
      /** Connections per replica. */
      readonly pool: number;
      readonly retentionMs: number;
    };

/**
 * The public listener's limits (`server`). Which of them a reload can change, and for which
 * connections, is http/listener.ts's to say.
 */
export interface ServerConfig {
  /** Time to receive a request's head: node's `server.headersTimeout` (then 408). */
  readonly headersTimeoutMs: number;
  /** Time to receive a whole request, body included: node's `server.requestTimeout` (then 408). */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** Longest silence on a connection the caller holds up (a stopped body, an unread answer). */
  readonly idleTimeoutMs: number;
  /** Largest request head, in bytes: node's `maxHeaderSize` (then 431). */
  readonly maxHeaderBytes: number;
  /** Largest request body of a route that sets none, in bytes (then 413). */
  readonly maxBodyBytes: number;
}

export interface Config {
  readonly listen: ListenConfig;
  readonly admin: AdminConfig;
  readonly server: ServerConfig;
  /** Base of absolute resource URLs in challenges; derived from the request when absent. */
  readonly publicUrl: string | undefined;
  readonly payTo: Address;
  readonly networks: ReadonlyMap<string, NetworkConfig>;
  readonly assets: ReadonlyMap<string, AssetConfig>;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly routes: readonly RouteConfig[];
  /** The compiled route table, in config order. */
  readonly table: RouteTable<RouteConfig>;
  readonly unmatched: UnmatchedPolicy;
  /**
   * Under `unmatched: free`, refuse (404) a path that extends a priced route's path
   * (`/v1/report/x` beside a priced `GET /v1/report`): upstreams often mount a handler on a prefix.
   */
  readonly protectPrefixes: boolean;
  readonly limits: LimitsConfig;
  /** What `validate` and start-up point out without refusing the file. */
  readonly warnings: readonly string[];
  /** The upstream unmatched requests go to when `unmatched: free`. */
  readonly defaultUpstream: UpstreamConfig | undefined;
  readonly ledger: LedgerConfig;
  readonly logLevel: string;
  readonly trustProxy: boolean | number | readonly string[];
  readonly shutdownGraceMs: number;
  readonly reload: { readonly watch: boolean; readonly debounceMs: number };
  /** sha256 of the source text; identifies the active config in logs and metrics. */
  readonly hash: string;
}
