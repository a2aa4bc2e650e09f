/**
 * The route table: `METHOD /path` patterns compiled once, matched in config order, first match
 * wins. Matching runs on the segments `normaliseUrl` produced, which are also what is forwarded.
 * Pure.
 */

/**
 * HTTP methods a route may name; `*` is all of them. Not OPTIONS: the gateway answers CORS preflights
 * itself (never charged, never forwarded), so an OPTIONS route could never be served.
 */
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

type SegmentMatcher =
  | { readonly kind: 'literal'; readonly lower: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'any' } // `*`: exactly one segment
  | { readonly kind: 'rest' }; // `**`: zero or more segments; last only

export interface CompiledRoute<R> {
  readonly route: R;
  /** Upper-case methods (`*`: every one of ROUTE_METHODS). GET implies HEAD. */
  readonly methods: ReadonlySet<string>;
  /** Lower-case host, `*.example.com` for a suffix, or undefined for any host. */
  readonly host: string | undefined;
  readonly segments: readonly SegmentMatcher[];
}

export interface RouteMatch<R> {
  readonly route: R;
  readonly params: Readonly<Record<string, string>>;
}

export interface RouteTable<R = unknown> {
  readonly entries: readonly CompiledRoute<R>[];
}

export type CompileResult<R> = { readonly ok: true; readonly compiled: CompiledRoute<R> } | { readonly ok: false; readonly problem: string };

/** Compiles `"GET /v1/jobs/:id"` (and an optional host) into a matcher. */
export function compileRoute<R>(match: string, host: string | undefined, route: R): CompileResult<R> {
  const m = /^(\S+)\s+(\/\S*)$/.exec(match.trim());
  if (!m) return { ok: false, problem: `"${match}" is not of the form "METHOD /path"` };
  const [, methodText = '', pathText = ''] = m;
  const method = methodText.toUpperCase();
  if (method !== '*' && !(ROUTE_METHODS as readonly string[]).includes(method)) {
    return { ok: false, problem: `"${methodText}" is not an HTTP method (${ROUTE_METHODS.join(', ')} or *)` };
  }
  const segments: SegmentMatcher[] = [];
  const parts = pathText.split('/').filter((p) => p !== '');
  for (const [i, part] of parts.entries()) {
    if (part === '**') {
      if (i !== parts.length - 1) return { ok: false, problem: `"**" must be the last segment in "${match}"` };
      segments.push({ kind: 'rest' });
    } else if (part === '*') {
      segments.push({ kind: 'any' });
    } else if (part.startsWith(':')) {
      const name = part.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { ok: false, problem: `bad parameter name "${part}" in "${match}"` };
      segments.push({ kind: 'param', name });
    } else {
      if (part.includes('*') || part.includes('%')) return { ok: false, problem: `segment "${part}" in "${match}" mixes text with * or %` };
      segments.push({ kind: 'literal', lower: part.toLowerCase() });
    }
  }
  // `*` is every method the gateway forwards, not any method: a PROPFIND must not be charged on
  // a `*` route and then find no proxy route to take it.
  const methods: ReadonlySet<string> = new Set(method === '*' ? ROUTE_METHODS : method === 'GET' ? ['GET', 'HEAD'] : [method]);
  return { ok: true, compiled: { route, methods, host: host === undefined ? undefined : canonicalHost(host), segments } };
}

/** Finds the first route that matches, or undefined. `host` is the Host header (port ignored). */
export function matchRoute<R>(
  table: RouteTable<R>,
  method: string,
  host: string | undefined,
  segments: readonly string[],
): RouteMatch<R> | undefined {
  const hostname = host === undefined ? undefined : canonicalHost(stripPort(host));
  const lowered = segments.map((s) => s.toLowerCase());
  for (const entry of table.entries) {
    if (!entry.methods.has(method)) continue;
    if (entry.host !== undefined && !hostMatches(entry.host, hostname)) continue;
    const params = matchSegments(entry.segments, segments, lowered);
    if (params) return { route: entry.route, params };
  }
  return undefined;
}

/**
 * True when some route accepted by `predicate` matches these segments for any method and host.
 * Lets `unmatched: free` refuse a request that differs from a priced route only in method or
 * Host: many upstreams serve every method on a path, and none sees the gateway's Host.
 */
export function pathMatchesAny<R>(table: RouteTable<R>, segments: readonly string[], predicate: (route: R) => boolean): boolean {
  const lowered = segments.map((s) => s.toLowerCase());
  return table.entries.some((entry) => predicate(entry.route) && matchSegments(entry.segments, segments, lowered) !== undefined);
}

/**
 * True when these segments extend the path of some route accepted by `predicate` (its pattern
 * matches a proper prefix of them), for any method and host: `/v1/report/x` extends
 * `GET /v1/report`. `unmatched: { free: true, protectPrefixes: true }` refuses such paths.
 */
export function pathExtendsAny<R>(table: RouteTable<R>, segments: readonly string[], predicate: (route: R) => boolean): boolean {
  const lowered = segments.map((s) => s.toLowerCase());
  return table.entries.some((entry) => {
    const n = entry.segments.length;
    if (!predicate(entry.route) || segments.length <= n) return false;
    return matchSegments(entry.segments, segments.slice(0, n), lowered.slice(0, n)) !== undefined;
  });
}

/** `lowered`: the same segments lowercased once, for the case-insensitive literal comparisons. */
function matchSegments(pattern: readonly SegmentMatcher[], segments: readonly string[], lowered: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (const [i, p] of pattern.entries()) {
    if (p.kind === 'rest') return params;
    const s = segments[i];
    if (s === undefined) return undefined;
    switch (p.kind) {
      case 'literal':
        if (lowered[i] !== p.lower) return undefined;
        break;
      case 'param':
        params[p.name] = s;
        break;
      case 'any':
        break;
    }
  }
  return segments.length === pattern.length ? params : undefined;
}

function hostMatches(pattern: string, hostname: string | undefined): boolean {
  if (hostname === undefined) return false;
  if (pattern.startsWith('*.')) return hostname.endsWith(pattern.slice(1));
  return hostname === pattern;
}

/**
 * Lowercase, without the trailing dot of a fully qualified name: `Paid.Example.com.` is the same
 * host as `paid.example.com`, and must meet the same routes (else it could skip a priced one).
 */
function canonicalHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
