/**
 * The shape of the YAML file, as a zod schema: types, required keys, defaults and unknown keys.
 * Cross-references (an upstream a route names, an asset id, a price's precision) are checked in
 * `parse.ts`, which has the whole file in view. Every default here is documented beside its key
 * in `gateway.example.yaml`.
 */
import { z } from 'zod';

export const DEFAULT_LISTEN = { host: '0.0.0.0', port: 8402 } as const;
export const DEFAULT_ADMIN = { host: '127.0.0.1', port: 9402 } as const;
/** Shortest admin token accepted: 16 characters, so a short or placeholder word is refused at load. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
export const DEFAULT_FACILITATOR_TIMEOUT_MS = 10_000;
export const DEFAULT_SETTLE_RECEIPT_TIMEOUT_MS = 30_000;
/**
 * The most gas, in gas units, one local settlement may use: its transaction's gas limit, and the
 * bound of the ERC-1271 check at verification. A USDC `transferWithAuthorization` from an EOA
 * takes about 90k (75k to 90k measured on the test token); the rest is room for a smart wallet's
 * signature check. A payer with code decides what that check costs, so without a cap it decides
 * the settler's gas bill.
 */
export const DEFAULT_SETTLE_MAX_GAS = 150_000;
/** Below this no EIP-3009 transfer fits: a typo, refused at load rather than at every settlement. */
export const MIN_SETTLE_MAX_GAS = 50_000;
/** A block's gas on the chains x402 pays on is of this order; a cap above it caps nothing. */
export const MAX_SETTLE_MAX_GAS = 30_000_000;
/**
 * Seconds a payer is refused after one of its settlements was mined and reverted: the revert cost
 * the settler gas and moved nothing, and a payer whose wallet behaves in simulation and not on
 * chain could otherwise repeat it with every fresh authorization. 0 turns the refusal off (the
 * reverted authorization itself stays spent either way).
 */
export const DEFAULT_REVERT_PENALTY_SECONDS = 3_600;
/** How long a settlement may wait unmined below the going fee before the reconciler replaces it with a higher fee. */
export const DEFAULT_REPLACE_AFTER_SECONDS = 30;
/**
 * `settlement: deferred`'s batches (`settle.batch`): at most this many authorizations in one
 * Multicall3 transaction, flushed when that many are queued or the oldest has waited `maxWaitMs`;
 * an authorization must outlive the next flush by `marginSeconds` to wait for it.
 */
export const DEFAULT_SETTLE_BATCH = Object.freeze({ maxSize: 50, maxWaitMs: 1_000, maxGas: 5_000_000, marginSeconds: 30 });
/** `deferred`: the most a payer, and all payers, may owe in unsettled deferred payments, and the penalty after a failure. */
export const DEFAULT_DEFERRED = Object.freeze({ maxUnsettledPerPayer: '$0.10', maxUnsettledTotal: '$100', penaltySeconds: 86_400 });
/** The v2 servers' default; leaves room for slow upstreams before `validBefore` runs out. */
export const DEFAULT_MAX_TIMEOUT_SECONDS = 300;
export const DEFAULT_PROOF_CONFIRMATIONS = 1;
/**
 * How old, in seconds, an X-Payment-Proof transfer may be. Short: the hash is public from the
 * moment it is broadcast, and the window is how long a payer's transfer stays claimable.
 */
export const DEFAULT_PROOF_MAX_AGE_SECONDS = 900;
/**
 * The X-Payment-Proof flow is off unless a route (or `defaults`) turns it on: a plain transfer is
 * not bound to a request the way an EIP-3009 authorization is, so it is an opt-in.
 */
export const DEFAULT_PROOF_ENABLED = false;
export const DEFAULT_LEDGER_PATH = './x402-gateway.db';
export const DEFAULT_LEDGER_POOL = 10;
/** How long a SIGTERM drain may take before the gateway exits anyway. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 25_000;
/** Quiet time after a config file change before it is reloaded (editors write in several steps). */
export const DEFAULT_RELOAD_DEBOUNCE_MS = 200;
/** Time to receive a request's whole head (request line and headers): cuts a slowloris head. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Time to receive a whole request, body included: cuts a trickled body. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/**
 * How long an idle keep-alive connection stays open. Longer than common load balancers' idle
 * timeouts (60 s on AWS ALB and GCP), so they close idle connections first and never race us.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
/**
 * Longest silence on a connection the caller is holding up: a request body that stopped, an
 * answer it stopped reading. A connection waiting on the gateway (the upstream, a settlement) is
 * never cut by it (http/listener.ts).
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Largest request head, in bytes (node's own default); larger: 431. */
export const DEFAULT_MAX_HEADER_BYTES = 16_384;
/** Largest request body, in bytes, of every route that sets none; larger: 413. */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;
/** A body limit above this is a typo: 1 TiB. */
export const MAX_MAX_BODY_BYTES = 2 ** 40;
export const DEFAULT_API_KEY_HEADER = 'x-api-key';
/**
 * Paid requests a payer may have forwarded and not charged (the upstream failed, timed out, or
 * the payer hung up on a failing call), per minute, per replica. One authorization can be
 * re-presented after each such outcome, so without a bound one signature buys unlimited
 * uncharged upstream work.
 */
export const DEFAULT_UNCHARGED_FORWARDS = { max: 10, perSeconds: 60 } as const;
/**
 * Payment attempts that fail before settlement (malformed, refused, replayed), per client
 * address: each can cost chain reads, so one caller's junk is bounded before it costs the
 * operator's RPC quota.
 */
export const DEFAULT_FAILED_PAYMENTS_PER_CLIENT = { max: 60, perSeconds: 60 } as const;
/** The same, per payer whose signature checked out (a forger cannot spend another payer's). */
export const DEFAULT_FAILED_PAYMENTS_PER_PAYER = { max: 20, perSeconds: 60 } as const;
/** Multicall3's canonical address (Base and most EVM chains): one verification's reads in one call. */
export const DEFAULT_MULTICALL3 = '0xcA11bde05977b3631167028862bE2a173976CA11';
/** How long rows of outcomes that moved no money (refusals, releases) are kept. */
export const DEFAULT_LEDGER_RETENTION = '7d';
/** Times one authorization's answer may be served again to a caller that never got it whole. */
export const DEFAULT_REDELIVERIES = 3;
/**
 * Under `settlement: after`, an authorization must outlive the upstream's answer by this much:
 * the settlement is sent after the upstream answers and must be mined before `validBefore`
 * (the 6-second grace of the verify rule included). A shorter-lived one would let a caller have
 * the upstream do the work and then let the payment expire unsettled.
 */
export const SETTLEMENT_MARGIN_SECONDS = 15;

/** The shortest payment validity, in seconds, a `settlement: after` route in front of `upstream` can honour. */
export function minimumAfterTimeout(upstream: { readonly timeoutMs: number }): number {
  return Math.ceil(upstream.timeoutMs / 1000) + SETTLEMENT_MARGIN_SECONDS;
}

const hostPort = (defaults: { host: string; port: number }) =>
  z
    .strictObject({
      host: z.string().min(1).default(defaults.host),
      port: z.number().int().min(0).max(65_535).default(defaults.port),
    })
    .default(defaults);

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address');
const privateKey = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'must be a 0x-prefixed 32-byte hex private key');
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const headers = z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'is not a valid header name'), z.string()).default({});
const timeoutMs = (fallback: number) => z.number().int().positive().max(600_000).default(fallback);

/**
 * A Coinbase CDP API key (usually `${CDP_API_KEY_ID}` and `${CDP_API_KEY_SECRET}`): each call to
 * the facilitator then carries a fresh JWT signed with it. The secret's form is checked in
 * compile-facilitators.ts, which has the YAML path to report it under.
 */
const cdp = z.strictObject({
  apiKeyId: z.string().min(1, 'must not be empty'),
  apiKeySecret: z.string().min(1, 'must not be empty'),
});

const facilitator = z.strictObject({
  url: httpUrl,
  headers,
  timeoutMs: timeoutMs(DEFAULT_FACILITATOR_TIMEOUT_MS),
  cdp: cdp.optional(),
});

const settle = z.discriminatedUnion('mode', [
  z.strictObject({
    mode: z.literal('local'),
    privateKey,
    receiptTimeoutMs: timeoutMs(DEFAULT_SETTLE_RECEIPT_TIMEOUT_MS),
    maxGas: z.number().int().min(MIN_SETTLE_MAX_GAS).max(MAX_SETTLE_MAX_GAS).default(DEFAULT_SETTLE_MAX_GAS),
    revertPenaltySeconds: z.number().int().min(0).max(30 * 86_400).default(DEFAULT_REVERT_PENALTY_SECONDS),
    replaceAfterSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_REPLACE_AFTER_SECONDS),
    /** Below this gas balance the settler is reported low (a warning, /readyz): `"0.002 ETH"`, in the chain's native token. */
    minBalance: z
      .string()
      .regex(/^(0|[1-9][0-9]*)(\.[0-9]{1,18})?( ETH)?$/, 'must be an amount of the native token, like "0.002 ETH"')
      .optional(),
    /** `settlement: deferred`: how queued authorizations are settled in batches. */
    batch: z
      .strictObject({
        maxSize: z.number().int().min(1).max(500).default(DEFAULT_SETTLE_BATCH.maxSize),
        maxWaitMs: z.number().int().min(50).max(600_000).default(DEFAULT_SETTLE_BATCH.maxWaitMs),
        maxGas: z.number().int().min(MIN_SETTLE_MAX_GAS).max(30_000_000).default(DEFAULT_SETTLE_BATCH.maxGas),
        marginSeconds: z.number().int().min(0).max(3_600).default(DEFAULT_SETTLE_BATCH.marginSeconds),
      })
      .default({ ...DEFAULT_SETTLE_BATCH }),
  }),
  z.strictObject({
    mode: z.literal('facilitator'),
    url: httpUrl,
    headers,
    timeoutMs: timeoutMs(DEFAULT_FACILITATOR_TIMEOUT_MS),
    cdp: cdp.optional(),
    /** Tried in order when the one before gives no answer (unreachable, failing, or refusing our credentials). */
    fallbacks: z.array(facilitator).default([]),
  }),
]);

const network = z.strictObject({
  network: z.string().regex(/^eip155:[1-9][0-9]*$/, 'must be a CAIP-2 EVM network id like eip155:8453'),
  rpc: z.union([httpUrl, z.array(httpUrl)]).optional(),
  verify: z.enum(['local', 'facilitator']).optional(),
  settle,
  /** Multicall3 on this chain, to read a payment's nonce state and balance in one call; false: none. */
  multicall3: z.union([address, z.literal(false)]).default(DEFAULT_MULTICALL3),
  proof: z
    .strictObject({
      confirmations: z.number().int().min(1).max(1000).default(DEFAULT_PROOF_CONFIRMATIONS),
      maxAgeSeconds: z.number().int().positive().default(DEFAULT_PROOF_MAX_AGE_SECONDS),
    })
    .default({ confirmations: DEFAULT_PROOF_CONFIRMATIONS, maxAgeSeconds: DEFAULT_PROOF_MAX_AGE_SECONDS }),
});

const asset = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$/, 'must look like symbol@network, e.g. usdc@base'),
  network: z.string().min(1),
  address,
  name: z.string().min(1),
  version: z.string().min(1),
  decimals: z.number().int().min(0).max(36),
  symbol: z.string().min(1).optional(),
});

const upstream = z.strictObject({
  url: httpUrl,
  /** Until the upstream's status line and headers. */
  timeoutMs: timeoutMs(DEFAULT_UPSTREAM_TIMEOUT_MS),
  /** Longest silence between two body bytes; `timeoutMs` when absent. */
  idleTimeoutMs: z.number().int().positive().max(3_600_000).optional(),
  /** The same for `text/event-stream` answers, which may be quiet for long; none when absent. */
  sseIdleTimeoutMs: z.number().int().positive().max(86_400_000).optional(),
  headers,
});

const settlement = z.enum(['before', 'after', 'deferred']);
const dollars = z.string().regex(/^\$(0|[1-9][0-9]*)(\.[0-9]+)?$/, 'must be a dollar amount like "$0.10"');
/** `settlement: deferred`'s risk bounds; a route's own override the defaults' field by field. */
const deferredTerms = z.strictObject({
  maxUnsettledPerPayer: dollars.optional(),
  maxUnsettledTotal: dollars.optional(),
  penaltySeconds: z.number().int().min(0).max(30 * 86_400).optional(),
});

/** A token bucket: `max` at once, refilled `max` per `perSeconds`. */
const rateLimit = (fallback: { max: number; perSeconds: number }) =>
  z.strictObject({
    max: z.number().int().positive().max(1_000_000).default(fallback.max),
    perSeconds: z.number().int().positive().max(86_400).default(fallback.perSeconds),
  });
/** `enforce` charges; `shadow` computes the charge, counts and logs it, and lets the request pass free. */
const mode = z.enum(['enforce', 'shadow']);
/** A duration as `30m`, `12h`, `7d`: how long rows that moved no money are kept. */
const retention = z.string().regex(/^[1-9][0-9]{0,5}[mhd]$/, 'must be a duration like 30m, 12h or 7d');

/** Callers who pass free: holders of an API key (stored as its sha256), or addresses in a CIDR. */
const allow = z.strictObject({
  apiKeySha256: z.array(z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the hex sha256 of the key (printf %s KEY | sha256sum)')).default([]),
  apiKeyHeader: z.string().regex(/^[A-Za-z0-9-]+$/).default(DEFAULT_API_KEY_HEADER),
  cidrs: z.array(z.string().min(1)).default([]),
});

const price = z.union([
  z.literal('free'),
  z.string().startsWith('$', 'must be "free", a dollar price like "$0.01", or { amount, asset }'),
  z.strictObject({ amount: z.string(), asset: z.string() }),
]);

/** Bytes; 0 refuses every body. */
const maxBodyBytes = z.number().int().min(0).max(MAX_MAX_BODY_BYTES);
const serverTimeoutMs = (fallback: number) => z.number().int().positive().max(3_600_000).default(fallback);
const SERVER_DEFAULTS = {
  headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
  requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
  keepAliveTimeoutMs: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
} as const;

/** The public listener's limits: its timeouts, and the largest head and body it takes. */
const server = z
  .strictObject({
    headersTimeoutMs: serverTimeoutMs(DEFAULT_HEADERS_TIMEOUT_MS),
    requestTimeoutMs: serverTimeoutMs(DEFAULT_REQUEST_TIMEOUT_MS),
    keepAliveTimeoutMs: serverTimeoutMs(DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
    idleTimeoutMs: serverTimeoutMs(DEFAULT_IDLE_TIMEOUT_MS),
    maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(DEFAULT_MAX_HEADER_BYTES),
    maxBodyBytes: maxBodyBytes.default(DEFAULT_MAX_BODY_BYTES),
  })
  // node refuses a server whose head may take longer than the whole request.
  .refine((s) => s.headersTimeoutMs <= s.requestTimeoutMs, { message: 'must not exceed requestTimeoutMs', path: ['headersTimeoutMs'] })
  .default(SERVER_DEFAULTS);

const route = z.strictObject({
  match: z.string().min(1),
  host: z.string().min(1).optional(),
  upstream: z.string().min(1).optional(),
  price,
  accepts: z.array(z.string()).min(1).optional(),
  payTo: address.optional(),
  description: z.string().default(''),
  mimeType: z.string().default(''),
  settlement: settlement.optional(),
  deferred: deferredTerms.optional(),
  mode: mode.optional(),
  allow: allow.optional(),
  maxTimeoutSeconds: z.number().int().min(10).max(86_400).optional(),
  /** Accept X-Payment-Proof (a signed plain transfer) on this route; default `defaults.proof`. */
  proof: z.boolean().optional(),
  /** Largest request body on this route; default `server.maxBodyBytes`. */
  maxBodyBytes: maxBodyBytes.optional(),
});

/**
 * The admin listener, and who may use it. `token` guards everything on it but the probes and
 * `/metrics`; `metricsToken` guards `/metrics`. Whether a host beyond loopback needs a token is
 * checked in parse.ts (it needs the host and the tokens together).
 */
const adminToken = z.string().min(MIN_ADMIN_TOKEN_LENGTH, `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
const admin = z
  .strictObject({
    host: z.string().min(1).default(DEFAULT_ADMIN.host),
    port: z.number().int().min(0).max(65_535).default(DEFAULT_ADMIN.port),
    token: adminToken.optional(),
    metricsToken: adminToken.optional(),
    allowUnauthenticated: z.boolean().default(false),
  })
  .default({ ...DEFAULT_ADMIN, allowUnauthenticated: false });

export const configSchema = z.strictObject({
  listen: hostPort(DEFAULT_LISTEN),
  admin,
  server,
  publicUrl: httpUrl.optional(),
  payTo: address,
  networks: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'network names are letters, digits, _ and -'), network),
  assets: z.array(asset).default([]),
  upstreams: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'upstream names are letters, digits, _ and -'), upstream),
  defaults: z
    .strictObject({
      accepts: z.array(z.string()).min(1).optional(),
      upstream: z.string().optional(),
      maxTimeoutSeconds: z.number().int().min(10).max(86_400).default(DEFAULT_MAX_TIMEOUT_SECONDS),
      settlement: settlement.default('after'),
      deferred: deferredTerms.optional(),
      mode: mode.default('enforce'),
      allow: allow.optional(),
      unmatched: z
        .union([z.enum(['deny', 'free']), z.strictObject({ free: z.literal(true), protectPrefixes: z.boolean().default(false) })])
        .default('deny'),
      proof: z.boolean().default(DEFAULT_PROOF_ENABLED),
    })
    .default({ maxTimeoutSeconds: DEFAULT_MAX_TIMEOUT_SECONDS, settlement: 'after', mode: 'enforce', unmatched: 'deny', proof: DEFAULT_PROOF_ENABLED }),
  routes: z.array(route).min(1),
  limits: z
    .strictObject({
      /** Per payer: paid requests forwarded and then not charged (upstream >= 400, timeout, hang-up). */
      unchargedForwards: rateLimit(DEFAULT_UNCHARGED_FORWARDS).default(DEFAULT_UNCHARGED_FORWARDS),
      /** Per authorization: answers served again, without a second charge, to a caller that did not get one. */
      redeliveries: z.number().int().min(0).max(100).default(DEFAULT_REDELIVERIES),
      /** Payment attempts that fail before settlement, per client address and per payer (429 beyond). */
      failedPayments: z
        .strictObject({
          perClient: rateLimit(DEFAULT_FAILED_PAYMENTS_PER_CLIENT).default(DEFAULT_FAILED_PAYMENTS_PER_CLIENT),
          perPayer: rateLimit(DEFAULT_FAILED_PAYMENTS_PER_PAYER).default(DEFAULT_FAILED_PAYMENTS_PER_PAYER),
        })
        .default({ perClient: DEFAULT_FAILED_PAYMENTS_PER_CLIENT, perPayer: DEFAULT_FAILED_PAYMENTS_PER_PAYER }),
    })
    .default({
      unchargedForwards: DEFAULT_UNCHARGED_FORWARDS,
      redeliveries: DEFAULT_REDELIVERIES,
      failedPayments: { perClient: DEFAULT_FAILED_PAYMENTS_PER_CLIENT, perPayer: DEFAULT_FAILED_PAYMENTS_PER_PAYER },
    }),
  /** The embedded SQLite file (`path`, the default), or a PostgreSQL server shared by every replica. */
  ledger: z
    .union([
      z.strictObject({
        store: z.literal('sqlite').default('sqlite'),
        path: z.string().min(1).default(DEFAULT_LEDGER_PATH),
        retention: retention.default(DEFAULT_LEDGER_RETENTION),
      }),
      z.strictObject({
        store: z.literal('postgres'),
        /** A libpq connection URL (`postgres://user:password@host:5432/db`), usually `${DATABASE_URL}`. */
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL'),
        /** Connections per replica. */
        pool: z.number().int().min(1).max(100).default(DEFAULT_LEDGER_POOL),
        retention: retention.default(DEFAULT_LEDGER_RETENTION),
      }),
    ])
    .default({ store: 'sqlite', path: DEFAULT_LEDGER_PATH, retention: DEFAULT_LEDGER_RETENTION }),
  /** Trust X-Forwarded-For from a proxy in front (for client IPs in allowlists and logs): fastify's trustProxy. */
  trustProxy: z.union([z.boolean(), z.number().int().min(1), z.array(z.string())]).default(false),
  shutdown: z
    .strictObject({ graceMs: z.number().int().min(0).max(600_000).default(DEFAULT_SHUTDOWN_GRACE_MS) })
    .default({ graceMs: DEFAULT_SHUTDOWN_GRACE_MS }),
  reload: z
    .strictObject({ watch: z.boolean().default(true), debounceMs: z.number().int().min(0).max(60_000).default(DEFAULT_RELOAD_DEBOUNCE_MS) })
    .default({ watch: true, debounceMs: DEFAULT_RELOAD_DEBOUNCE_MS }),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
});

export type RawConfig = z.infer<typeof configSchema>;
