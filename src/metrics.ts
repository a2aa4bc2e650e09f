/**
 * Prometheus metrics (prom-client), one registry per process so counts survive config reloads.
 * Served as text on the admin listener's /metrics.
 *
 * Revenue counters count atomic units of the asset (USDC: millionths of a dollar). Prometheus
 * counters are float64, exact up to 2^53 atomic units (9 billion USDC), far beyond a process's life.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CachedVerifierCounters } from './payments/cached-verifier.js';
import type { ReconcilerCounters } from './payments/exact-evm/reconciler.js';
import type { QueueStats } from './payments/ports.js';

/** Seconds; from a fast upstream on the same host to a slow chain confirmation. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class GatewayMetrics {
  readonly registry = new Registry();

  /** Requests by route (the `match` string, or `unmatched`) and outcome. */
  readonly requests = new Counter({
    name: 'x402_gateway_requests_total',
    help: 'Requests by route and outcome (free, challenged, paid, deferred, refused, not_charged, redelivered, shadow, allowlisted, not_found, invalid, error)',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly verificationFailures = new Counter({
    name: 'x402_gateway_verification_failures_total',
    help: 'Payments refused before settlement, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly settlements = new Counter({
    name: 'x402_gateway_settlements_total',
    help: 'Settlement attempts by outcome (settled, failed, pending) and mode (local, facilitator, proof, reconciler, batch)',
    labelNames: ['outcome', 'mode'] as const,
    registers: [this.registry],
  });

  readonly revenue = new Counter({
    name: 'x402_gateway_revenue_atomic_total',
    help: 'Settled revenue in atomic units of the asset, by route, asset and network',
    labelNames: ['route', 'asset', 'network'] as const,
    registers: [this.registry],
  });

  /** `settlement: deferred`: served, then its settlement failed (the payer moved its funds): atomic units per asset. */
  readonly badDebt = new Counter({
    name: 'x402_gateway_deferred_bad_debt_atomic_total',
    help: 'Deferred payments served and then not settled (bad debt), in atomic units, by route, asset and network',
    labelNames: ['route', 'asset', 'network'] as const,
    registers: [this.registry],
  });

  readonly batchSize = new Histogram({
    name: 'x402_gateway_settlement_batch_size',
    help: 'Authorizations per batch settlement transaction (settlement: deferred)',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers: [this.registry],
  });

  readonly batchGasPerPayment = new Histogram({
    name: 'x402_gateway_settlement_batch_gas_per_payment',
    help: 'Gas used per settled payment in a batch settlement transaction',
    buckets: [20_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000, 150_000],
    registers: [this.registry],
  });

  readonly shadowRevenue = new Counter({
    name: 'x402_gateway_shadow_revenue_atomic_total',
    help: 'What shadow-mode routes would have charged, in atomic units, by route, asset and network',
    labelNames: ['route', 'asset', 'network'] as const,
    registers: [this.registry],
  });

  readonly upstreamSeconds = new Histogram({
    name: 'x402_gateway_upstream_duration_seconds',
    help: 'Time from forwarding a request to the upstream response headers, by route',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly settlementSeconds = new Histogram({
    name: 'x402_gateway_settlement_duration_seconds',
    help: 'Time to settle a payment, by mode',
    labelNames: ['mode'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly ledgerErrors = new Counter({
    name: 'x402_gateway_ledger_errors_total',
    help: 'Ledger operations that failed, by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  /** Set by each /readyz and /metrics request, which ask the store. */
  readonly ledgerUp = new Gauge({
    name: 'x402_gateway_ledger_up',
    help: 'Whether the ledger answered its last probe (1) or not (0)',
    registers: [this.registry],
  });

  readonly settlerBalance = new Gauge({
    name: 'x402_gateway_settler_balance_wei',
    help: "The settling account's gas balance, read every 30 s",
    labelNames: ['network', 'address'] as const,
    registers: [this.registry],
  });

  /** 1 while the balance is below `settle.minBalance`: what an alert watches. */
  readonly settlerBalanceLow = new Gauge({
    name: 'x402_gateway_settler_balance_low',
    help: 'Whether the settling account is below settle.minBalance (1) or not (0)',
    labelNames: ['network', 'address'] as const,
    registers: [this.registry],
  });

  readonly infrastructureErrors = new Counter({
    name: 'x402_gateway_infrastructure_errors_total',
    help: 'Requests answered 502/503 for a fault of a dependency (chain RPC, ledger store, facilitator), by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly prunedRows = new Counter({
    name: 'x402_gateway_ledger_pruned_rows_total',
    help: 'Ledger rows deleted past ledger.retention (outcomes that moved no money, expired reservations)',
    registers: [this.registry],
  });

  readonly configReloads = new Counter({
    name: 'x402_gateway_config_reloads_total',
    help: 'Config reloads by result (applied, invalid, unchanged, error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly configInfo = new Gauge({
    name: 'x402_gateway_config_info',
    help: 'The active config: 1 for its sha256 hash',
    labelNames: ['hash'] as const,
    registers: [this.registry],
  });

  /** Verification-cache counts are read from the verifiers when scraped. */
  readonly #cacheSources: Readonly<CachedVerifierCounters>[] = [];
  readonly #reconcilers: Readonly<ReconcilerCounters>[] = [];

  constructor() {
    const sources = this.#cacheSources;
    new Counter({
      name: 'x402_gateway_verification_cache_total',
      help: 'Verification-cache lookups by result (hit, miss, collapsed into a check in flight)',
      labelNames: ['result'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of sources) {
          this.inc({ result: 'hit' }, c.hits);
          this.inc({ result: 'miss' }, c.misses);
          this.inc({ result: 'collapsed' }, c.collapsed);
        }
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'x402_gateway_process_' });
  }

  /**
   * Adds a verification cache to the scraped totals. Sources are never removed: a verifier
   * replaced by a reload keeps its final counts, so the totals never go down.
   */
  addCacheSource(counters: Readonly<CachedVerifierCounters>): void {
    this.#cacheSources.push(counters);
  }

  /**
   * Exports the reconciler's work: the ledger's pending rows (asked at each scrape) and each
   * reconciler's counts of re-broadcasts, replacements and gap fillers.
   */
  watchSettlements(pending: () => Promise<{ count: number; oldestTimeMs: number | undefined }>, nowMs: () => number): void {
    const reconcilers = this.#reconcilers;
    const sample = oncePerScrape(pending);
    new Gauge({
      name: 'x402_gateway_pending_settlements',
      help: 'Receipt rows still pending: sent settlements whose outcome the reconciler has not yet recorded',
      registers: [this.registry],
      async collect() {
        const found = await sample();
        this.set(found === undefined ? Number.NaN : found.count);
      },
    });
    new Gauge({
      name: 'x402_gateway_oldest_pending_settlement_seconds',
      help: 'Age of the oldest pending receipt row (0 when none)',
      registers: [this.registry],
      async collect() {
        const oldest = (await sample())?.oldestTimeMs;
        this.set(oldest === undefined ? 0 : Math.max(0, (nowMs() - oldest) / 1000));
      },
    });
    new Counter({
      name: 'x402_gateway_reconciler_actions_total',
      help: 'What reconcilers did to unmined settlements: rebroadcast (sent again, dropped by the node), replaced (higher fee), filled (a nonce gap)',
      labelNames: ['action'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of reconcilers) {
          this.inc({ action: 'rebroadcast' }, c.rebroadcasts);
          this.inc({ action: 'replaced' }, c.replacements);
          this.inc({ action: 'filled' }, c.fillers);
        }
      },
    });
  }

  /**
   * The settlement queue's gauges, read from the store at each scrape: items owed (queued or
   * batched), their amount per asset, and the oldest one's age.
   */
  watchQueue(stats: () => Promise<QueueStats>, assetOf: (key: string) => { readonly asset: string; readonly network: string } | undefined, nowMs: () => number): void {
    const sample = oncePerScrape(stats);
    new Gauge({
      name: 'x402_gateway_deferred_queued',
      help: 'Deferred payments served and not yet settled (queued or in a batch in flight)',
      registers: [this.registry],
      async collect() {
        const found = await sample();
        this.set(found === undefined ? Number.NaN : found.count);
      },
    });
    new Gauge({
      name: 'x402_gateway_deferred_queued_atomic',
      help: 'Amount of the deferred payments not yet settled, in atomic units, by asset and network',
      labelNames: ['asset', 'network'] as const,
      registers: [this.registry],
      async collect() {
        const found = await sample();
        this.reset();
        for (const [key, amount] of found?.amounts ?? []) {
          const named = assetOf(key);
          this.set({ asset: named?.asset ?? key, network: named?.network ?? '' }, Number(amount));
        }
      },
    });
    new Gauge({
      name: 'x402_gateway_deferred_oldest_queued_seconds',
      help: 'Age of the oldest deferred payment not yet settled (0 when none)',
      registers: [this.registry],
      async collect() {
        const oldest = (await sample())?.oldestQueuedAtMs;
        this.set(oldest === undefined ? 0 : Math.max(0, (nowMs() - oldest) / 1000));
      },
    });
  }

  /** Adds a reconciler's counts to the scraped totals (never removed, as cache sources). */
  addReconciler(counters: Readonly<ReconcilerCounters>): void {
    this.#reconcilers.push(counters);
  }

  /** Marks `hash` as the active config. */
  setConfig(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }
}

/**
 * One store query per scrape for gauges read together: prom-client collects them side by side,
 * so each after the first asks while the first's query is in flight, and shares it. A failed
 * query reads as undefined (the gauges show NaN or 0), never as a failed scrape.
 */
function oncePerScrape<T>(query: () => Promise<T>): () => Promise<T | undefined> {
  let inFlight: Promise<T | undefined> | undefined;
  return () => {
    inFlight ??= query()
      .catch(() => undefined)
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}
