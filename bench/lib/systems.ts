/**
 * The systems under test, each started on its own processes:
 *
 * - `upstream`: the API (bench/procs/upstream.ts), shared by every proxy.
 * - `bare`: fastify + @fastify/http-proxy, the free-route baseline.
 * - `gateway`: x402-gateway from a config file's text; priced routes settle with the gateway's own
 *   key (`settle.mode: local`), `/paid/**` after the upstream answered, `/before/**` before.
 * - `official`: @x402/express with the official facilitator, two processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAYEE, SETTLER_KEY } from '../../test/helpers/chain-world.js';
import { startChild, type Child } from './children.js';

/** Paths on every proxy; the upstream answers 64 KiB for paths ending in `/big`. */
export const PATHS = {
  freeSmall: '/free/small',
  freeBig: '/free/big',
  paidAfter: '/paid/small',
  paidBefore: '/before/small',
} as const;

export interface GatewayParams {
  readonly rpcUrl: string;
  readonly upstreamUrl: string;
  /** Extra node flags, e.g. `--cpu-prof`. */
  readonly execArgv?: readonly string[];
}

/**
 * The gateway as an operator would run it: file ledger (SQLite, WAL, synchronous = FULL),
 * `info` logs (one line per request, to a discarded stdout), local verification and settlement.
 */
export function gatewayConfigYaml(p: { rpcUrl: string; upstreamUrl: string; ledgerPath: string }): string {
  return `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: ["${p.rpcUrl}"], verify: local, settle: { mode: local, privateKey: "${SETTLER_KEY}" } }
upstreams:
  api: { url: "${p.upstreamUrl}" }
defaults: { accepts: [usdc@base], upstream: api }
routes:
  - { match: "GET /free/**", price: free }
  - { match: "GET /paid/**", price: "$0.01" }
  - { match: "GET /before/**", price: "$0.01", settlement: before }
ledger: { path: "${p.ledgerPath}" }
log: { level: info }
`;
}

export function startUpstream(): Promise<Child> {
  return startChild('upstream', 'upstream');
}

export function startBareProxy(upstreamUrl: string, execArgv: readonly string[] = []): Promise<Child> {
  return startChild('bare-proxy', 'bare-proxy', { params: { upstream: upstreamUrl }, extraExecArgv: execArgv });
}

/** The gateway, on a ledger file of its own that is deleted when it stops. */
export async function startGateway(p: GatewayParams): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'x402-bench-'));
  const child = await startChild('gateway', 'gateway', {
    params: { config: gatewayConfigYaml({ rpcUrl: p.rpcUrl, upstreamUrl: p.upstreamUrl, ledgerPath: join(dir, 'ledger.db') }) },
    // --expose-gc only lets the harness collect garbage before reading memory; nothing else changes.
    extraExecArgv: ['--expose-gc', ...(p.execArgv ?? [])],
  }).catch((err: unknown) => {
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
