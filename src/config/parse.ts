/**
 * Untrusted YAML data to a frozen `Config`, reporting every problem at once with its YAML path
 * (`routes[2].price: ...`). The gateway never starts, or reloads into, a half-valid config.
 * Pure: the caller reads the file and expands `${VAR}`. This file checks the sections against one
 * another; each section is compiled by its own `compile-*.ts`, and `deep-freeze.ts` seals the result.
 */
import { getAddress } from 'viem';
import type { z } from 'zod';
import { compileAdmin } from './compile-admin.js';
import { compileAllowlist } from './compile-allowlist.js';
import { checkAssetIds, compileAssets } from './compile-assets.js';
import { compileNetworks } from './compile-networks.js';
import { compilePrice } from './compile-price.js';
import { deepFreeze } from './deep-freeze.js';
import { formatPath } from './format-path.js';
import { configSchema, DEFAULT_DEFERRED, DEFAULT_SETTLE_BATCH, minimumAfterTimeout, type RawConfig } from './schema.js';
import type { Config, DeferredTerms, LedgerConfig, RouteConfig, UpstreamConfig } from './types.js';
import { compileRoute, type CompiledRoute } from '../routes/table.js';

export type ParseResult = { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly problems: readonly string[] };

function zodProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `${formatPath(issue.path)}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    }
    return `${formatPath(issue.path)}: ${issue.message}`;
  });
}

/** Validates and compiles a parsed YAML document. `hash` identifies the source text. */
export function parseConfig(data: unknown, hash: string): ParseResult {
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) return { ok: false, problems: zodProblems(parsed.error) };
  const problems: string[] = [];
  const config = compile(parsed.data, hash, problems);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: deepFreeze(config) };
}

function compile(raw: RawConfig, hash: string, problems: string[]): Config {
  const networks = compileNetworks(raw, problems);
  const assets = compileAssets(raw, networks, problems);
  const upstreams = new Map<string, UpstreamConfig>(
    Object.entries(raw.upstreams).map(([name, u]) => [
      name,
      {
        name,
        url: u.url.replace(/\/+$/, ''),
        timeoutMs: u.timeoutMs,
        idleTimeoutMs: u.idleTimeoutMs ?? u.timeoutMs,
        sseIdleTimeoutMs: u.sseIdleTimeoutMs,
        headers: u.headers,
      },
    ]),
  );
  const payTo = getAddress(raw.payTo);
  const defaultAccepts = raw.defaults.accepts ?? [...assets.keys()].filter((id) => id.startsWith('usdc@'));
  checkAssetIds(defaultAccepts, assets, ['defaults', 'accepts'], problems);

  let defaultUpstream: UpstreamConfig | undefined;
  if (raw.defaults.upstream !== undefined) {
    defaultUpstream = upstreams.get(raw.defaults.upstream);
    if (!defaultUpstream) problems.push(`defaults.upstream: unknown upstream "${raw.defaults.upstream}"`);
  } else if (upstreams.size === 1) {
    defaultUpstream = [...upstreams.values()][0];
  }
  const unmatched = raw.defaults.unmatched === 'deny' ? 'deny' : 'free';
  const protectPrefixes = typeof raw.defaults.unmatched === 'object' && raw.defaults.unmatched.protectPrefixes;
  if (unmatched === 'free' && !defaultUpstream) {
    problems.push('defaults.upstream: unmatched: free needs an upstream to send unmatched requests to');
  }

  const defaultAllow = raw.defaults.allow === undefined ? undefined : compileAllowlist(raw.defaults.allow, ['defaults', 'allow'], problems);
  const routes: RouteConfig[] = [];
  const entries: CompiledRoute<RouteConfig>[] = [];
  raw.routes.forEach((r, index) => {
    const at = (key: string) => `routes[${index}].${key}`;
    const compiled = compileRoute(r.match, r.host, index);
    if (!compiled.ok) problems.push(`${at('match')}: ${compiled.problem}`);
    const upstreamName = r.upstream ?? (defaultUpstream ? defaultUpstream.name : undefined);
    const upstream = upstreamName === undefined ? undefined : upstreams.get(upstreamName);
    if (!upstream) {
      problems.push(upstreamName === undefined ? `${at('upstream')}: required (there is no defaults.upstream)` : `${at('upstream')}: unknown upstream "${upstreamName}"`);
      return;
    }
    const maxTimeoutSeconds = r.maxTimeoutSeconds ?? raw.defaults.maxTimeoutSeconds;
    const price = compilePrice(r, index, {
      assets,
      accepts: r.accepts ?? defaultAccepts,
      payTo: r.payTo === undefined ? payTo : getAddress(r.payTo),
      maxTimeoutSeconds,
      problems,
    });
    const settlement = r.settlement ?? raw.defaults.settlement;
    // A deferred payment that cannot be queued (its caps, its payer) settles as `after` would.
    const minValiditySeconds = settlement === 'before' ? 0 : minimumAfterTimeout(upstream);
    const deferred = settlement === 'deferred' ? deferredTermsOf(raw.defaults.deferred, r.deferred) : undefined;
    if (settlement === 'deferred' && price.kind === 'priced') {
      for (const option of price.options) {
        if (option.asset.network.settle.mode !== 'local') {
          problems.push(`${at('settlement')}: deferred settles in batches with the gateway's own key; network "${option.asset.network.name}" settles through a facilitator`);
        } else if (option.asset.network.multicall3 === undefined) {
          problems.push(`${at('settlement')}: deferred settles in batches through Multicall3; network "${option.asset.network.name}" has multicall3: false`);
        }
      }
    }
    if (price.kind === 'priced' && maxTimeoutSeconds < minValiditySeconds) {
      problems.push(
        `${r.maxTimeoutSeconds === undefined ? 'defaults' : `routes[${index}]`}.maxTimeoutSeconds: ${maxTimeoutSeconds} is too short for ` +
          `settlement: ${settlement} in front of upstream "${upstream.name}" (timeoutMs ${upstream.timeoutMs}); it must be at least ${minValiditySeconds}`,
      );
    }
    const route: RouteConfig = {
      index,
      match: r.match,
      upstream,
      price,
      description: r.description,
      mimeType: r.mimeType,
      settlement,
      ...(deferred === undefined ? {} : { deferred }),
      minValiditySeconds,
      mode: r.mode ?? raw.defaults.mode,
      proof: r.proof ?? raw.defaults.proof,
      ...(r.maxBodyBytes === undefined ? {} : { maxBodyBytes: r.maxBodyBytes }),
      allow: r.allow === undefined ? defaultAllow : compileAllowlist(r.allow, ['routes', index, 'allow'], problems),
    };
    if (!compiled.ok) return;
    routes.push(route);
    entries.push({ ...compiled.compiled, route });
  });

  const usesCidrs = [raw.defaults.allow, ...raw.routes.map((r) => r.allow)].some((a) => a !== undefined && a.cidrs.length > 0);
  if (raw.trustProxy === true && usesCidrs) {
    problems.push(
      'trustProxy: true trusts any X-Forwarded-For, so any caller could claim an allowlisted address; give the hop count or the addresses of the proxies in front',
    );
  }

  return {
    listen: raw.listen,
    admin: compileAdmin(raw.admin, problems),
    server: raw.server,
    publicUrl: raw.publicUrl?.replace(/\/+$/, ''),
    payTo,
    networks,
    assets,
    upstreams,
    routes,
    table: { entries },
    unmatched,
    protectPrefixes,
    limits: raw.limits,
    warnings: [...(unmatched === 'free' && !protectPrefixes ? prefixWarnings(routes) : []), ...deferredWarnings(routes)],
    defaultUpstream,
    ledger: compileLedger(raw.ledger),
    logLevel: raw.log.level,
    trustProxy: raw.trustProxy,
    shutdownGraceMs: raw.shutdown.graceMs,
    reload: raw.reload,
    hash,
  };
}

/**
 * `unmatched: free` passes `/v1/report/anything` free beside a priced `GET /v1/report`, and many
 * upstreams serve such a path from the handler of its prefix. Said for each priced route whose
 * path can be extended (one that ends in `**` covers its extensions already).
 */
function prefixWarnings(routes: readonly RouteConfig[]): string[] {
  return routes
    .filter((r) => r.price.kind === 'priced' && !/\*\*$/.test(r.match.trim()))
    .map(
      (r) =>
        `routes[${r.index}]: with unmatched: free, paths under "${r.match}" (e.g. its path + "/x") pass free; an upstream that serves them from the same handler gives away the priced answer. Set defaults.unmatched: { free: true, protectPrefixes: true } to refuse them`,
    );
}

/** The `ledger` section with its retention in milliseconds. */
function compileLedger(raw: RawConfig['ledger']): LedgerConfig {
  const { retention, ...store } = raw;
  return { ...store, retentionMs: durationMs(retention) };
}

const DURATION_UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30m`, `12h`, `7d` (the schema checked the form) in milliseconds. */
export function durationMs(text: string): number {
  const unit = text.slice(-1) as keyof typeof DURATION_UNIT_MS;
  return Number(text.slice(0, -1)) * DURATION_UNIT_MS[unit];
}

/**
 * A deferred route whose payments cannot wait for a batch: clients sign `validBefore` about
 * `maxTimeoutSeconds` ahead, and a payment is queued only when it outlives the next flush and the
 * margin, so with a longer batch wait every payment settles at once. Not wrong, but not deferred.
 */
function deferredWarnings(routes: readonly RouteConfig[]): string[] {
  const warnings: string[] = [];
  for (const route of routes) {
    if (route.settlement !== 'deferred' || route.price.kind !== 'priced') continue;
    for (const option of route.price.options) {
      const settle = option.asset.network.settle;
      const batch = settle.mode === 'local' ? (settle.batch ?? DEFAULT_SETTLE_BATCH) : undefined;
      if (batch === undefined) continue;
      const horizon = Math.ceil(batch.maxWaitMs / 1000) + batch.marginSeconds;
      if (option.maxTimeoutSeconds > horizon) continue;
      warnings.push(
        `routes[${route.index}]: settlement: deferred, but its payments are valid for ${option.maxTimeoutSeconds} s and a batch on network "${option.asset.network.name}" may take ` +
          `${horizon} s (settle.batch.maxWaitMs plus marginSeconds): every payment will settle at once; raise maxTimeoutSeconds or lower the batch wait`,
      );
      break;
    }
  }
  return warnings;
}

type DeferredOverrides = { readonly [K in keyof DeferredTerms]?: DeferredTerms[K] | undefined };

/** A deferred route's risk bounds: its own fields over the defaults' over DEFAULT_DEFERRED. */
function deferredTermsOf(defaults: DeferredOverrides | undefined, own: DeferredOverrides | undefined): DeferredTerms {
  return {
    maxUnsettledPerPayer: own?.maxUnsettledPerPayer ?? defaults?.maxUnsettledPerPayer ?? DEFAULT_DEFERRED.maxUnsettledPerPayer,
    maxUnsettledTotal: own?.maxUnsettledTotal ?? defaults?.maxUnsettledTotal ?? DEFAULT_DEFERRED.maxUnsettledTotal,
    penaltySeconds: own?.penaltySeconds ?? defaults?.penaltySeconds ?? DEFAULT_DEFERRED.penaltySeconds,
  };
}
