/**
 * Untrusted YAML data to a frozen `Config`, reporting every problem at once with its YAML path
 * (`routes[2].price: ...`). The gateway never starts, or reloads into, a half-valid config.
 * Pure: the caller reads the file and expands `${VAR}`.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { getAddress } from 'viem';
import type { z } from 'zod';
import { KNOWN_CHAINS } from './known-networks.js';
import { configSchema, minimumAfterTimeout, type RawConfig } from './schema.js';
import type {
  Address,
  Allowlist,
  AssetConfig,
  Config,
  NetworkConfig,
  PaymentOption,
  RouteConfig,
  RoutePrice,
  SettleConfig,
  UpstreamConfig,
} from './types.js';
import { dollarsToAtomic, parseAtomic } from '../pricing.js';
import { withWire } from '../protocol/option-wire.js';
import { compileRoute, type CompiledRoute } from '../routes/table.js';

export type ParseResult = { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly problems: readonly string[] };

/** Formats a path like ['routes', 2, 'price'] as `routes[2].price`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}

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
    const minValiditySeconds = settlement === 'after' ? minimumAfterTimeout(upstream) : 0;
    if (price.kind === 'priced' && maxTimeoutSeconds < minValiditySeconds) {
      problems.push(
        `${r.maxTimeoutSeconds === undefined ? 'defaults' : `routes[${index}]`}.maxTimeoutSeconds: ${maxTimeoutSeconds} is too short for ` +
          `settlement: after in front of upstream "${upstream.name}" (timeoutMs ${upstream.timeoutMs}); it must be at least ${minValiditySeconds}`,
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
      minValiditySeconds,
      mode: r.mode ?? raw.defaults.mode,
      proof: r.proof ?? raw.defaults.proof,
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
    admin: raw.admin,
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
    warnings: unmatched === 'free' && !protectPrefixes ? prefixWarnings(routes) : [],
    defaultUpstream,
    ledger: raw.ledger,
    logLevel: raw.log.level,
    trustProxy: raw.trustProxy,
    shutdownGraceMs: raw.shutdown.graceMs,
    reload: raw.reload,
    hash,
  };
}

function compileNetworks(raw: RawConfig, problems: string[]): Map<string, NetworkConfig> {
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
          }
        : {
            mode: 'facilitator',
            facilitators: [{ url: n.settle.url, headers: n.settle.headers, timeoutMs: n.settle.timeoutMs }, ...n.settle.fallbacks],
          };
    networks.set(name, {
      name,
      caip2: n.network as `eip155:${number}`,
      chainId,
      v1Name: KNOWN_CHAINS.get(chainId)?.v1Name,
      rpc,
      verify,
      settle,
      proofConfirmations: n.proof.confirmations,
      proofMaxAgeSeconds: n.proof.maxAgeSeconds,
    });
  }
  return networks;
}

/** Built-in `usdc@<network>` for every configured network on a known chain, then declared assets over them. */
function compileAssets(raw: RawConfig, networks: ReadonlyMap<string, NetworkConfig>, problems: string[]): Map<string, AssetConfig> {
  const assets = new Map<string, AssetConfig>();
  for (const network of networks.values()) {
    const usdc = KNOWN_CHAINS.get(network.chainId)?.usdc;
    if (!usdc) continue;
    assets.set(`usdc@${network.name}`, {
      id: `usdc@${network.name}`,
      network,
      address: getAddress(usdc.address),
      eip712Name: usdc.eip712Name,
      eip712Version: usdc.eip712Version,
      decimals: usdc.decimals,
      symbol: 'USDC',
    });
  }
  raw.assets.forEach((a, i) => {
    const network = networks.get(a.network);
    if (!network) {
      problems.push(`assets[${i}].network: unknown network "${a.network}" (declare it under networks)`);
      return;
    }
    if (!a.id.endsWith(`@${a.network}`)) problems.push(`assets[${i}].id: "${a.id}" must end with "@${a.network}"`);
    assets.set(a.id, {
      id: a.id,
      network,
      address: getAddress(a.address),
      eip712Name: a.name,
      eip712Version: a.version,
      decimals: a.decimals,
      symbol: a.symbol ?? (a.id.split('@')[0] ?? a.id).toUpperCase(),
    });
  });
  return assets;
}

function checkAssetIds(ids: readonly string[], assets: ReadonlyMap<string, AssetConfig>, path: (string | number)[], problems: string[]): void {
  ids.forEach((id, i) => {
    if (!assets.has(id)) problems.push(`${formatPath([...path, i])}: unknown asset "${id}"${assetHint(assets)}`);
  });
}

function assetHint(assets: ReadonlyMap<string, AssetConfig>): string {
  return assets.size === 0 ? ' (no assets: declare one under assets, or use a network on a known chain)' : ` (known: ${[...assets.keys()].join(', ')})`;
}

interface PriceContext {
  readonly assets: ReadonlyMap<string, AssetConfig>;
  readonly accepts: readonly string[];
  readonly payTo: Address;
  readonly maxTimeoutSeconds: number;
  readonly problems: string[];
}

function compilePrice(r: RawConfig['routes'][number], index: number, ctx: PriceContext): RoutePrice {
  const at = `routes[${index}].price`;
  // Each option's wire form (v2 requirement and its JSON, v1 terms, info headers) is built here,
  // once, so no request rebuilds it.
  const option = (asset: AssetConfig, amount: bigint): PaymentOption =>
    withWire({ scheme: 'exact', asset, amount, payTo: ctx.payTo, maxTimeoutSeconds: ctx.maxTimeoutSeconds });
  if (r.price === 'free') return { kind: 'free' };
  if (typeof r.price === 'string') {
    if (r.accepts) checkAssetIds(r.accepts, ctx.assets, ['routes', index, 'accepts'], ctx.problems);
    const options: PaymentOption[] = [];
    for (const id of ctx.accepts) {
      const asset = ctx.assets.get(id);
      if (!asset) continue; // reported by checkAssetIds
      const amount = dollarsToAtomic(r.price, asset.decimals);
      if (!amount.ok) {
        ctx.problems.push(`${at}: ${amount.problem}`);
        return { kind: 'free' };
      }
      options.push(option(asset, amount.amount));
    }
    if (options.length === 0 && ctx.accepts.length === 0) ctx.problems.push(`${at}: no asset to charge in (set defaults.accepts or routes[${index}].accepts)`);
    return { kind: 'priced', options };
  }
  const asset = ctx.assets.get(r.price.asset);
  if (!asset) {
    ctx.problems.push(`${at}.asset: unknown asset "${r.price.asset}"${assetHint(ctx.assets)}`);
    return { kind: 'free' };
  }
  const amount = parseAtomic(r.price.amount);
  if (!amount.ok) {
    ctx.problems.push(`${at}.amount: ${amount.problem}`);
    return { kind: 'free' };
  }
  return { kind: 'priced', options: [option(asset, amount.amount)] };
}

/** API key hashes and CIDRs (checked with node's BlockList, which parses and matches them). */
function compileAllowlist(raw: NonNullable<RawConfig['defaults']['allow']>, path: (string | number)[], problems: string[]): Allowlist {
  const cidrs = new BlockList();
  raw.cidrs.forEach((text, i) => {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
    const address = m?.[1] ?? '';
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const prefix = m?.[2] === undefined ? (type === 'ipv6' ? 128 : 32) : Number(m[2]);
    if (!type || prefix > (type === 'ipv6' ? 128 : 32)) {
      problems.push(`${formatPath([...path, 'cidrs', i])}: "${text}" is not an IP address or CIDR block`);
      return;
    }
    cidrs.addSubnet(address, prefix, type);
  });
  return {
    apiKeySha256: new Set(raw.apiKeySha256.map((h) => h.toLowerCase())),
    apiKeyHeader: raw.apiKeyHeader.toLowerCase(),
    cidrs,
    cidrList: raw.cidrs,
  };
}

/** Freezes the config graph so nothing past the edge can change it. Maps are left as they are. */
function deepFreeze<T>(value: T): T {
  // BlockList is a native handle: freezing it would break its methods.
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof BlockList)) {
    Object.freeze(value);
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
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
