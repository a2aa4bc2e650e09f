/**
 * An OpenAPI 3.0 or 3.1 document (already parsed from JSON or YAML) -> the gateway routes that
 * price each of its operations, in an order where no route shadows another. Pure.
 *
 * The gateway matches whole segments (`:param`, `*`, `**`; literals case-insensitively) in config
 * order, first match wins (src/routes/table.ts). Two patterns of different lengths never meet
 * (without `**`), so only patterns of one length can shadow one another, and a pattern can be
 * wholly covered only by one with a parameter where it has a literal. Sorting by the segments'
 * kinds, a literal before a parameter at the first place they differ, puts every pattern before
 * each one that covers it; what is still covered after that (`/a/{x}` beside `/a/{y}`, `/Pets`
 * beside `/pets`, GET beside a later HEAD) is the same route twice, and is skipped with a reason.
 */
import { ROUTE_METHODS } from '../routes/table.js';

export type RouteMethod = (typeof ROUTE_METHODS)[number];

/** One operation, as a gateway route. */
export interface OpenApiRoute {
  readonly method: RouteMethod;
  /** The gateway's pattern, base path included: `/v2/pet/:petId`. */
  readonly pattern: string;
  /** The operation's path in the document, with its base path: `/v2/pet/{petId}`. */
  readonly template: string;
  /** The summary, else the operationId, on one line; '' when it has neither. */
  readonly description: string;
  /** True when a segment mixes text and a parameter (`{id}.json`) and became `*`. */
  readonly wildcarded: boolean;
}

/** Something in the document that became no route, and why (written as a comment). */
export interface SkippedOperation {
  /** `OPTIONS /pets`, or a path for a whole path item. */
  readonly what: string;
  readonly reason: string;
}

export type OpenApiRoutes =
  | {
      readonly ok: true;
      /** `info.title` and `info.version`, when given. */
      readonly title: string;
      readonly routes: readonly OpenApiRoute[];
      readonly skipped: readonly SkippedOperation[];
      /** The base path of the top-level `servers[0]` ('' for none). */
      readonly basePath: string;
    }
  | { readonly ok: false; readonly problem: string };

/** The operation keys of a path item, in the specification's order. */
const OPERATION_KEYS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** How many `$ref` hops are followed to a path item before giving up (a loop ends here). */
const MAX_REF_HOPS = 16;

type Json = Readonly<Record<string, unknown>>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const stringOr = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);

/** The routes of every operation in the document; a problem when it is not OpenAPI 3.x. */
export function openApiRoutes(doc: unknown): OpenApiRoutes {
  if (!isObject(doc)) return { ok: false, problem: 'not an OpenAPI document (expected an object at the top)' };
  const version = doc['openapi'];
  if (typeof version !== 'string' || !version.startsWith('3.')) {
    const swagger = typeof doc['swagger'] === 'string' ? ` (Swagger ${doc['swagger']} is not supported: convert it to OpenAPI 3 first)` : '';
    return { ok: false, problem: `not an OpenAPI 3.0 or 3.1 document: no "openapi: 3.x" field${swagger}` };
  }
  const info = isObject(doc['info']) ? doc['info'] : {};
  const title = [stringOr(info['title'], ''), stringOr(info['version'], '')].filter((s) => s !== '').join(' ');
  const topServer = firstServer(doc['servers']);
  const paths = isObject(doc['paths']) ? doc['paths'] : {};

  const found: (OpenApiRoute & { readonly order: number })[] = [];
  const skipped: SkippedOperation[] = [];
  for (const [template, rawItem] of Object.entries(paths)) {
    if (template.startsWith('x-')) continue; // a specification extension, not a path
    if (!template.startsWith('/')) {
      skipped.push({ what: template, reason: 'a path must start with /' });
      continue;
    }
    const item = resolvePathItem(doc, rawItem);
    if (typeof item === 'string') {
      skipped.push({ what: template, reason: item });
      continue;
    }
    const itemServer = firstServer(item['servers']) ?? topServer;
    for (const key of OPERATION_KEYS) {
      const operation = item[key];
      if (!isObject(operation)) continue;
      const method = key.toUpperCase();
      const full = joinPath(serverBasePath(firstServer(operation['servers']) ?? itemServer), template);
      if (!isRouteMethod(method)) {
        skipped.push({ what: `${method} ${full}`, reason: unroutableReason(method) });
        continue;
      }
      const { pattern, wildcarded } = gatewayPattern(full);
      found.push({ method, pattern, template: full, description: operationDescription(operation), wildcarded, order: found.length });
    }
  }

  const sorted = [...found].sort(compareRoutes);
  const routes: OpenApiRoute[] = [];
  for (const { order: _order, ...route } of sorted) {
    const earlier = routes.find((r) => covers(r, route));
    if (earlier) skipped.push({ what: `${route.method} ${route.template}`, reason: `the same route as ${earlier.method} ${earlier.template} (served by it)` });
    else routes.push(route);
  }
  return { ok: true, title, routes, skipped, basePath: serverBasePath(topServer) };
}

/** `/{dataset}/{version}/fields` -> `/:dataset/:version/fields`; see segmentPattern. */
export function gatewayPattern(template: string): { readonly pattern: string; readonly wildcarded: boolean } {
  const used = new Set<string>();
  let wildcarded = false;
  const segments = splitPath(template).map((segment) => {
    const p = segmentPattern(segment, used);
    if (p === '*') wildcarded = true;
    return p;
  });
  return { pattern: `/${segments.join('/')}`, wildcarded };
}

/**
 * One segment: `{name}` -> `:name` (made a valid, unique parameter name: the gateway takes
 * `[A-Za-z_][A-Za-z0-9_]*`); a segment that mixes text and a parameter (`{id}.json`,
 * `{name}:cancel`) or has what a literal may not (`*`, `%` once decoded, a leading `:`) -> `*`, which
 * matches any one segment; anything else is a literal, percent-decoded as request paths are.
 */
function segmentPattern(segment: string, used: Set<string>): string {
  const param = /^\{([^{}]+)\}$/.exec(segment);
  if (param) return `:${uniqueName(param[1] ?? '', used)}`;
  if (segment.includes('{')) return '*';
  let literal = segment;
  try {
    literal = decodeURIComponent(segment);
  } catch {
    // a malformed escape stays as written, and then has a `%`
  }
  // A leading `:` would make the gateway read a parameter; `.` and `..` never survive normalisation.
  return /[*%\s/]/.test(literal) || literal.startsWith(':') || literal === '.' || literal === '..' ? '*' : literal;
}

function uniqueName(raw: string, used: Set<string>): string {
  let base = raw.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(base)) base = `_${base}`;
  let name = base;
  for (let n = 2; used.has(name); n += 1) name = `${base}_${n}`;
  used.add(name);
  return name;
}

/** Non-empty segments, as the gateway splits both patterns and request paths. */
function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

function joinPath(base: string, template: string): string {
  return `/${[...splitPath(base), ...splitPath(template)].join('/')}`;
}

function isRouteMethod(method: string): method is RouteMethod {
  return (ROUTE_METHODS as readonly string[]).includes(method);
}

function unroutableReason(method: string): string {
  return method === 'OPTIONS'
    ? 'the gateway answers OPTIONS (CORS preflights) itself, never charged, so a route for it could never be served'
    : `the gateway forwards no ${method} requests`;
}

/** The summary, else the operationId, with line breaks and runs of spaces made one space. */
function operationDescription(operation: Json): string {
  const summary = stringOr(operation['summary'], '').trim();
  const text = summary !== '' ? summary : stringOr(operation['operationId'], '');
  return text.replace(/\s+/g, ' ').trim();
}

/** A path item, following local `$ref`s (`#/components/pathItems/x`); a reason when it cannot be. */
function resolvePathItem(doc: Json, raw: unknown): Json | string {
  let item = raw;
  const siblings: Record<string, unknown>[] = [];
  for (let hop = 0; hop <= MAX_REF_HOPS; hop += 1) {
    if (!isObject(item)) return 'the path item is not an object';
    const ref = item['$ref'];
    // Outer fields win: reduceRight lays the outermost item's siblings on last.
    if (ref === undefined) return siblings.reduceRight<Json>((merged, outer) => ({ ...merged, ...outer }), item);
    if (typeof ref !== 'string' || !ref.startsWith('#/')) return `its $ref ${JSON.stringify(ref)} is not resolved (only local "#/..." references are)`;
    // OpenAPI 3.1 lets fields beside a $ref add to (and override) the referenced item.
    const { $ref: _ref, ...rest } = item;
    siblings.push(rest);
    item = jsonPointer(doc, ref.slice(1));
    if (item === undefined) return `its $ref ${ref} points at nothing in the document`;
  }
  return `its $ref chain is longer than ${MAX_REF_HOPS} hops (a loop?)`;
}

/** RFC 6901: `/components/pathItems/a~1b` -> doc.components.pathItems['a/b']. */
function jsonPointer(doc: Json, pointer: string): unknown {
  let node: unknown = doc;
  for (const raw of pointer.split('/').slice(1)) {
    let token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    try {
      token = decodeURIComponent(token); // a pointer in a URI fragment may be percent-encoded
    } catch {
      // kept as written
    }
    if (!isObject(node) || !Object.hasOwn(node, token)) return undefined;
    node = node[token];
  }
  return node;
}

function firstServer(servers: unknown): Json | undefined {
  return Array.isArray(servers) && isObject(servers[0]) ? servers[0] : undefined;
}

/**
 * The path part of a server URL, its `{variables}` replaced by their defaults (or first enum
 * value): `https://{env}.example.com/{basePath}` with basePath `v2` -> `/v2`. A relative URL
 * (`/v1`) is its own path. '' for none, for `/`, and for a URL that is only an origin.
 */
export function serverBasePath(server: Json | undefined): string {
  if (server === undefined) return '';
  const variables = isObject(server['variables']) ? server['variables'] : {};
  const url = stringOr(server['url'], '').replace(/\{([^{}]+)\}/g, (whole, name: string) => {
    const v = variables[name];
    if (!isObject(v)) return whole;
    const enumFirst = Array.isArray(v['enum']) ? v['enum'][0] : undefined;
    const value = v['default'] ?? enumFirst;
    return typeof value === 'string' || typeof value === 'number' ? String(value) : whole;
  });
  const withoutOrigin = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*(.*)$/.exec(url)?.[1] ?? url;
  const path = withoutOrigin.replace(/[?#].*$/, '');
  const segments = splitPath(path).filter((s) => s !== '.');
  return segments.length === 0 ? '' : `/${segments.join('/')}`;
}

/** Each segment as [0, its lowercased text] for a literal, [1, ''] for `:param` or `*`. */
const segmentKeys = (pattern: string): (readonly [number, string])[] =>
  splitPath(pattern).map((s) => (s.startsWith(':') || s === '*' ? [1, ''] : [0, s.toLowerCase()]));

/**
 * Segment by segment: a literal before a parameter, literals alphabetically (so one resource's
 * routes stay together); a pattern before a shorter one it extends; then HEAD before GET (a GET
 * route also takes HEAD, so a HEAD operation after its GET would never be reached); then the
 * document's order. A pattern that another covers comes first: where they differ first, it has
 * the literal.
 */
function compareRoutes(a: OpenApiRoute & { readonly order: number }, b: OpenApiRoute & { readonly order: number }): number {
  const [ka, kb] = [segmentKeys(a.pattern), segmentKeys(b.pattern)];
  for (let i = 0; i < Math.min(ka.length, kb.length); i += 1) {
    const [[rankA, textA], [rankB, textB]] = [ka[i] ?? [0, ''], kb[i] ?? [0, '']];
    if (rankA !== rankB) return rankA - rankB;
    if (textA !== textB) return textA < textB ? -1 : 1;
  }
  if (ka.length !== kb.length) return kb.length - ka.length;
  const head = (r: OpenApiRoute) => (r.method === 'HEAD' ? 0 : 1);
  return head(a) - head(b) || a.order - b.order;
}

/** True when every request `later` matches is matched by `earlier` first. */
function covers(earlier: OpenApiRoute, later: OpenApiRoute): boolean {
  const methodCovered = earlier.method === later.method || (earlier.method === 'GET' && later.method === 'HEAD');
  if (!methodCovered) return false;
  const [e, l] = [splitPath(earlier.pattern), splitPath(later.pattern)];
  return e.length === l.length && e.every((s, i) => s.startsWith(':') || s === '*' || s.toLowerCase() === (l[i] ?? '').toLowerCase());
}
