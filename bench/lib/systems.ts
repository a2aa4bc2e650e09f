/**
 * The systems under test, each started on its own processes:
 *
 * - `upstream`: the API (bench/procs/upstream.ts), shared by every proxy.
 * - `bare`: fastify + @fastify/http-proxy, the free-route baseline.
 * - `gateway`: x402-gateway from a config file's text; priced routes settle with the gateway's own
 *   key (`settle.mode: local`), `/paid/**` after the upstream answered, `/before/**` before; its
 *   ledger a SQLite file of its own, or a PostgreSQL database that several gateways may share.
 * - `official`: @x402/express with the official facilitator, two processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAYEE, SETTLER_KEY } from '../../test/helpers/chain-world.js';
import { startChild, type Child } from './children.js';

/** Paths on every proxy; the upstream answers 64 KiB for paths ending in `/big`. */
/** The price of every paid route of the gateway's bench config (the official server charges the same). */
export const PAID_PRICE = '$0.01';
/** PAID_PRICE in USDC's atomic units. */
export const PAID_PRICE_ATOMIC = 10_000n;

export const PATHS = {
  freeSmall: '/free/small',
  freeBig: '/free/big',
  paidAfter: '/paid/small',
  paidBefore: '/before/small',
  /** Only on a gateway started with `deferred` terms (the deferred windows). */
  paidDeferred: '/deferred/small',
} as const;

/**
 * The terms of a gateway with a `settlement: deferred` route: its network's `settle.batch` and
 * `defaults.deferred.maxUnsettledPerPayer` (every window's payments come from one payer, so the
 * cap must be above what a window queues, or payments would settle synchronously).
 */
export interface DeferredTerms {
  readonly maxSize: number;
  readonly maxWaitMs: number;
  readonly maxUnsettledPerPayer: string;
}

/** Where a gateway keeps its ledger: the config's `ledger` value. */
export type LedgerChoice =
  | { readonly store: 'sqlite'; readonly path: string }
  | { readonly store: 'postgres'; readonly url: string; readonly pool: number };

/** Connections per gateway to PostgreSQL: the config's default, written out so the bench does not move with it. */
export const BENCH_POSTGRES_POOL = 10;

export interface GatewayParams {
  readonly rpcUrl: string;
  readonly upstreamUrl: string;
  /** A SQLite file of its own (deleted when it stops) unless a PostgreSQL database is given. */
  readonly postgresUrl?: string;
  /** Extra node flags, e.g. `--cpu-prof`. */
  readonly execArgv?: readonly string[];
  /** Adds the `/deferred/**` route and its batch terms; without it the config is as before. */
  readonly deferred?: DeferredTerms;
}

function ledgerYaml(ledger: LedgerChoice): string {
  switch (ledger.store) {
    case 'sqlite':
      return `{ store: sqlite, path: "${ledger.path}" }`;
    case 'postgres':
      return `{ store: postgres, url: "${ledger.url}", pool: ${ledger.pool} }`;
  }
}

/**
 * The gateway as an operator would run it: file ledger (SQLite, WAL, synchronous = FULL) or the
 * shared PostgreSQL store, `info` logs (one line per request, to a discarded stdout), local
 * verification and settlement. Listeners on port 0: gateways sharing a store differ only there.
 */
export function gatewayConfigYaml(p: { rpcUrl: string; upstreamUrl: string; ledger: LedgerChoice; deferred?: DeferredTerms }): string {
  const d = p.deferred;
  const batch = d === undefined ? '' : `, batch: { maxSize: ${d.maxSize}, maxWaitMs: ${d.maxWaitMs} }`;
  const deferredDefaults = d === undefined ? '' : `, deferred: { maxUnsettledPerPayer: "${d.maxUnsettledPerPayer}" }`;
  const deferredRoute = d === undefined ? '' : `\n  - { match: "GET /deferred/**", price: "${PAID_PRICE}", settlement: deferred }`;
  return `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: ["${p.rpcUrl}"], verify: local, settle: { mode: local, privateKey: "${SETTLER_KEY}"${batch} } }
upstreams:
  api: { url: "${p.upstreamUrl}" }
defaults: { accepts: [usdc@base], upstream: api${deferredDefaults} }
routes:
  - { match: "GET /free/**", price: free }
  - { match: "GET /paid/**", price: "${PAID_PRICE}" }
  - { match: "GET /before/**", price: "${PAID_PRICE}", settlement: before }${deferredRoute}
ledger: ${ledgerYaml(p.ledger)}
log: { level: info }
`;
}

export function startUpstream(): Promise<Child> {
  return startChild('upstream', 'upstream');
}

export function startBareProxy(upstreamUrl: string, execArgv: readonly string[] = []): Promise<Child> {
  return startChild('bare-proxy', 'bare-proxy', { params: { upstream: upstreamUrl }, extraExecArgv: execArgv });
}

/** The gateway, on a ledger file of its own that is deleted when it stops, or on `postgresUrl`. */
export async function startGateway(p: GatewayParams): Promise<Child> {
  if (p.postgresUrl !== undefined) return startGatewayOn(p, { store: 'postgres', url: p.postgresUrl, pool: BENCH_POSTGRES_POOL });
  const dir = mkdtempSync(join(tmpdir(), 'x402-bench-'));
  const child = await startGatewayOn(p, { store: 'sqlite', path: join(dir, 'ledger.db') }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    ...child,
    async stop() {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function startGatewayOn(p: GatewayParams, ledger: LedgerChoice): Promise<Child> {
  return startChild('gateway', 'gateway', {
    params: { config: gatewayConfigYaml({ rpcUrl: p.rpcUrl, upstreamUrl: p.upstreamUrl, ledger, ...(p.deferred === undefined ? {} : { deferred: p.deferred }) }) },
    // --expose-gc only lets the harness collect garbage before reading memory; nothing else changes.
    extraExecArgv: ['--expose-gc', ...(p.execArgv ?? [])],
  });
}

export interface OfficialStack {
  readonly server: Child;
  readonly facilitator: Child;
  stop(): Promise<void>;
}

/** The official facilitator settles with the same dev key the gateway uses (each on its own chain). */
export async function startOfficial(rpcUrl: string): Promise<OfficialStack> {
  const facilitator = await startChild('facilitator', 'facilitator', { params: { rpcUrl, privateKey: SETTLER_KEY } });
  const server = await startChild('official-server', 'official-server', { params: { facilitator: facilitator.url, payTo: PAYEE } }).catch(
    async (err: unknown) => {
      await facilitator.stop();
      throw err;
    },
  );
  return {
    server,
    facilitator,
    async stop() {
      await server.stop();
      await facilitator.stop();
    },
  };
}
