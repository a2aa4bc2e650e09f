/**
 * `init --openapi`: an OpenAPI document -> routes (pure), on documents written here for each
 * rule and on every OpenAPI 3.0 and 3.1 example that @readme/oas-examples publishes, JSON and
 * YAML: every operation becomes a route, the written file validates, and the gateway's own route
 * table sends a sample request of each operation to that operation's route.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { initConfigYaml, initNetwork } from '../../src/init/init-config.js';
import { gatewayPattern, openApiRoutes, serverBasePath, type OpenApiRoute } from '../../src/init/openapi-routes.js';
import { compileRoute, matchRoute } from '../../src/routes/table.js';
import { normaliseUrl } from '../../src/routes/normalise.js';

const ok = (doc: unknown) => {
  const result = openApiRoutes(doc);
  if (!result.ok) throw new Error(result.problem);
  return result;
};
const matches = (routes: readonly OpenApiRoute[]) => routes.map((r) => `${r.method} ${r.pattern}`);
const op = (summary?: string) => (summary === undefined ? { responses: {} } : { summary, responses: {} });
const doc = (paths: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ openapi: '3.0.3', info: { title: 'T', version: '1' }, paths, ...extra });

describe('init --openapi: path templates', () => {
  it('turns {params} into :params', () => {
    expect(gatewayPattern('/{dataset}/{version}/fields').pattern).toBe('/:dataset/:version/fields');
    expect(gatewayPattern('/').pattern).toBe('/');
    expect(gatewayPattern('//a//b/').pattern).toBe('/a/b');
  });

  it('makes parameter names the gateway accepts, unique within a route', () => {
    expect(gatewayPattern('/pets/{pet-id}/{1st}/{a.b}').pattern).toBe('/pets/:pet_id/:_1st/:a_b');
    expect(gatewayPattern('/{a-b}/{a_b}/{a.b}').pattern).toBe('/:a_b/:a_b_2/:a_b_3');
  });

  it('makes a segment that mixes text and a parameter, or that no literal can be, a * wildcard', () => {
    expect(gatewayPattern('/files/{name}.{ext}')).toEqual({ pattern: '/files/*', wildcarded: true });
    expect(gatewayPattern('/v1/{name}:cancel').pattern).toBe('/v1/*');
    expect(gatewayPattern('/v1/:batch').pattern).toBe('/v1/*');
    expect(gatewayPattern('/glob/*/x%25').pattern).toBe('/glob/*/*');
    expect(gatewayPattern('/plain').wildcarded).toBe(false);
  });

  it('decodes a percent-encoded literal as request paths are', () => {
    expect(gatewayPattern('/caf%C3%A9/menu').pattern).toBe('/café/menu');
  });

  it('writes only patterns the gateway compiles', () => {
    for (const t of ['/{pet-id}', '/{id}.json', '/v1/:x', '/a%2Fb', '/%zz', '/{}', '/{{x}}']) {
      expect(compileRoute(`GET ${gatewayPattern(t).pattern}`, undefined, null).ok, t).toBe(true);
    }
  });
});

describe('init --openapi: base paths', () => {
  it('takes the path of servers[0].url', () => {
    expect(serverBasePath({ url: 'https://api.example.com/v2' })).toBe('/v2');
    expect(serverBasePath({ url: 'https://api.example.com/v2/' })).toBe('/v2');
    expect(serverBasePath({ url: 'https://api.example.com' })).toBe('');
    expect(serverBasePath({ url: 'https://api.example.com/' })).toBe('');
    expect(serverBasePath({ url: '/api/v1' })).toBe('/api/v1');
    expect(serverBasePath({ url: 'https://api.example.com/v1?x=1#y' })).toBe('/v1');
    expect(serverBasePath(undefined)).toBe('');
  });

  it('resolves server variables with their defaults (or first enum value)', () => {
    const server = {
      url: '{scheme}://{env}.example.com:{port}/{basePath}/{tail}',
      variables: { scheme: { default: 'https' }, env: { default: 'demo' }, port: { default: '443' }, basePath: { default: 'v2' }, tail: { enum: ['x', 'y'] } },
    };
    expect(serverBasePath(server)).toBe('/v2/x');
  });

  it('prefixes every route, and lets a path item or an operation name its own server', () => {
    const result = ok(
      doc(
        {
          '/a': { get: op() },
          '/b': { servers: [{ url: 'https://other.example.com/b-base' }], get: op(), post: { ...op(), servers: [{ url: '/op-base' }] } },
        },
        { servers: [{ url: 'https://api.example.com/{version}', variables: { version: { default: 'v3' } } }] },
      ),
    );
    expect(result.basePath).toBe('/v3');
    expect(matches(result.routes).sort()).toEqual(['GET /b-base/b', 'GET /v3/a', 'POST /op-base/b']);
  });
});

describe('init --openapi: order', () => {
  it('puts literal segments before parameters and longer paths before shorter, so nothing is shadowed', () => {
    const result = ok(
      doc({
        '/users/{id}': { get: op() },
        '/users': { get: op() },
        '/users/me': { get: op() },
        '/users/{id}/posts': { get: op() },
        '/users/{id}/posts/latest': { get: op() },
        '/users/{id}/posts/{post}': { get: op() },
        '/{anything}/posts': { get: op() },
      }),
    );
    expect(matches(result.routes)).toEqual([
      'GET /users/me',
      'GET /users/:id/posts/latest',
      'GET /users/:id/posts/:post',
      'GET /users/:id/posts',
      'GET /users/:id',
      'GET /users',
      'GET /:anything/posts',
    ]);
    expect(result.skipped).toEqual([]);
    expectNoShadowing(result.routes);
  });

  it('puts HEAD before GET on one path (a GET route also takes HEAD)', () => {
    const result = ok(doc({ '/x': { get: op('get x'), head: op('head x') } }));
    expect(matches(result.routes)).toEqual(['HEAD /x', 'GET /x']);
  });

  it('skips, with the reason, an operation that is the same route as an earlier one', () => {
    const result = ok(doc({ '/a/{x}': { get: op() }, '/a/{y}': { get: op(), post: op() }, '/Pets': { get: op() }, '/pets': { get: op() } }));
    expect(matches(result.routes)).toEqual(['GET /a/:x', 'POST /a/:y', 'GET /Pets']);
    expect(result.skipped).toEqual([
      { what: 'GET /a/{y}', reason: 'the same route as GET /a/{x} (served by it)' },
      { what: 'GET /pets', reason: 'the same route as GET /Pets (served by it)' },
    ]);
  });
});

describe('init --openapi: methods and descriptions', () => {
  it('upper-cases get, post, put, patch, delete and head, and skips options and trace with a reason', () => {
    const methods = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace'];
    const result = ok(doc({ '/r': Object.fromEntries(methods.map((m) => [m, op(m)])) }));
    expect(matches(result.routes)).toEqual(['HEAD /r', 'GET /r', 'PUT /r', 'POST /r', 'DELETE /r', 'PATCH /r']);
    expect(result.skipped.map((s) => s.what)).toEqual(['OPTIONS /r', 'TRACE /r']);
    expect(result.skipped[0]?.reason).toMatch(/CORS preflights/);
  });

  it('describes a route by its summary, else its operationId, on one line', () => {
    const result = ok(
      doc({
        '/a': { get: { summary: '  Find: a # thing\n  across lines ', operationId: 'findA' } },
        '/b': { get: { operationId: 'listB', description: 'not this' } },
        '/c': { get: { summary: '', operationId: 'cOp' } },
        '/d': { get: { description: 'no summary' } },
      }),
    );
    expect(result.routes.map((r) => r.description)).toEqual(['Find: a # thing across lines', 'listB', 'cOp', '']);
  });
});

describe('init --openapi: odd documents', () => {
  it('skips x- path items silently, and non-object path items and operations without crashing', () => {
    const result = ok(doc({ 'x-internal': { get: op() }, '/ok': { get: op(), post: 'nonsense', 'x-thing': {} }, '/null': null, 'relative': { get: op() } }));
    expect(matches(result.routes)).toEqual(['GET /ok']);
    expect(result.skipped).toEqual([
      { what: '/null', reason: 'the path item is not an object' },
      { what: 'relative', reason: 'a path must start with /' },
    ]);
  });

  it('takes path-level parameters, servers and summaries in its stride', () => {
    const result = ok(doc({ '/items/{id}': { summary: 'item', parameters: [{ name: 'id', in: 'path', required: true }], get: op('Get item'), delete: op() } }));
    expect(matches(result.routes)).toEqual(['GET /items/:id', 'DELETE /items/:id']);
  });

  it('resolves local $refs to path items (3.1 components.pathItems, JSON-pointer escapes) and skips others', () => {
    const result = ok({
      ...doc({
        '/local': { $ref: '#/components/pathItems/thing' },
        '/escaped': { $ref: '#/paths/~1local' },
        '/external': { $ref: 'other.yaml#/paths/~1x' },
        '/missing': { $ref: '#/components/pathItems/nope' },
        '/loop': { $ref: '#/paths/~1loop' },
      }),
      openapi: '3.1.0',
      components: { pathItems: { thing: { get: op('from a ref') } } },
    });
    expect(matches(result.routes)).toEqual(['GET /escaped', 'GET /local']);
    expect(result.routes.map((r) => r.description)).toEqual(['from a ref', 'from a ref']);
    expect(result.skipped.map((s) => s.what)).toEqual(['/external', '/missing', '/loop']);
    expect(result.skipped.map((s) => s.reason)).toEqual([
      'its $ref "other.yaml#/paths/~1x" is not resolved (only local "#/..." references are)',
      'its $ref #/components/pathItems/nope points at nothing in the document',
      'its $ref chain is longer than 16 hops (a loop?)',
    ]);
  });

  it('lets fields beside a $ref override the referenced path item (OpenAPI 3.1)', () => {
    const result = ok({
      ...doc({ '/s': { $ref: '#/components/pathItems/thing', get: op('overridden') } }),
      components: { pathItems: { thing: { get: op('original'), post: op('kept') } } },
    });
    expect(result.routes.map((r) => `${r.method} ${r.description}`)).toEqual(['GET overridden', 'POST kept']);
  });

  it('refuses what is not OpenAPI 3.x, naming Swagger 2.0', () => {
    expect(openApiRoutes({ swagger: '2.0', paths: {} })).toEqual({ ok: false, problem: 'not an OpenAPI 3.0 or 3.1 document: no "openapi: 3.x" field (Swagger 2.0 is not supported: convert it to OpenAPI 3 first)' });
    expect(openApiRoutes('text').ok).toBe(false);
    expect(openApiRoutes([]).ok).toBe(false);
    expect(ok({ openapi: '3.1.0', info: {}, webhooks: {} }).routes).toEqual([]);
  });
});

/** No route is wholly covered by an earlier one, by the gateway's own compiled matchers. */
function expectNoShadowing(routes: readonly OpenApiRoute[]): void {
  const compiled = routes.map((r) => {
    const c = compileRoute(`${r.method} ${r.pattern}`, undefined, r);
    if (!c.ok) throw new Error(c.problem);
    return c.compiled;
  });
  // Each route's own most general request (every parameter a fresh value) reaches it first.
  for (const [i, route] of routes.entries()) {
    const path = route.pattern.split('/').map((s, j) => (s.startsWith(':') || s === '*' ? `zz${j}` : s)).join('/');
    const found = matchRoute({ entries: compiled }, route.method, undefined, segmentsOf(path));
    expect(found?.route, `${route.method} ${route.pattern} (#${i})`).toBe(route);
  }
}

function segmentsOf(path: string): readonly string[] {
  const n = normaliseUrl(path);
  if (!n.ok) throw new Error(`${path}: ${n.reason}`);
  return n.segments;
}

// ---------------------------------------------------------------------------------------------
// Published examples.

const EXAMPLES = new URL('../../node_modules/@readme/oas-examples/', import.meta.url).pathname;
const published = ['3.0/json', '3.0/yaml', '3.1/json', '3.1/yaml'].flatMap((dir) =>
  readdirSync(join(EXAMPLES, dir))
    .filter((f) => /\.(json|ya?ml)$/.test(f))
    .map((f) => `${dir}/${f}`),
);
const ROUTED = ['get', 'put', 'post', 'delete', 'head', 'patch'];
const ENV = { SETTLER_KEY: `0x${'11'.repeat(32)}`, BASE_RPC_URL: 'http://127.0.0.1:8545' };

/** A request path for an operation's template: each `{param}` (or part of a segment) a sample value. */
function samplePath(template: string): string {
  return template
    .split('/')
    .map((s, i) => encodeURIComponent(safeDecode(s.replace(/\{[^{}]*\}/g, `v${i}`))))
    .join('/');
}
function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

describe('init --openapi on the published @readme/oas-examples documents', () => {
  it('finds the 3.0 and 3.1 examples in both JSON and YAML', () => {
    expect(published.length).toBeGreaterThan(90);
    expect(published).toContain('3.0/json/petstore.json');
    expect(published).toContain('3.1/yaml/train-travel.yaml');
  });

  it.each(published)('%s: every operation is a route that validates and receives its own requests', (file) => {
    const text = readFileSync(join(EXAMPLES, file), 'utf8');
    const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 10_000 });
    const result = ok(parsed);
    const duplicates = result.skipped.filter((sk) => sk.reason.startsWith('the same route as'));
    // Every operation is a route, or the same route as one (then listed with the one serving it).
    expect(result.routes.length + duplicates.length, JSON.stringify(result.skipped)).toBe(countOperations(parsed));
    if (result.routes.length === 0) return; // webhooks.*: no paths at all
    expectNoShadowing(result.routes);

    const network = initNetwork('base');
    if (network === undefined) throw new Error('base is a known network');
    const yaml = initConfigYaml({ upstream: 'https://api.example.com', payTo: `0x${'22'.repeat(20)}`, network, price: '$0.001', settlement: { mode: 'local' }, fileName: 'gateway.yaml', openapi: { source: file, ...result } });
    const config = parseConfigText(yaml, ENV);
    if (!config.ok) throw new Error(config.problems.join('\n'));
    expect(config.config.routes.map((r) => r.match)).toEqual(matches(result.routes));
    expect(config.config.routes.map((r) => r.description)).toEqual(result.routes.map((r) => r.description));

    // A sample request of each operation meets its own route (or the one serving its duplicate).
    for (const route of [...result.routes, ...duplicates.map((d) => ({ method: d.what.split(' ')[0] ?? '', template: d.what.split(' ')[1] ?? '', served: d.reason }))]) {
      const found = matchRoute(config.config.table, route.method, 'api.example.com', segmentsOf(samplePath(route.template)));
      if ('pattern' in route) expect(found?.route.match, `${route.method} ${route.template}`).toBe(`${route.method} ${route.pattern}`);
      else expect(found, `${route.method} ${route.template} (${route.served})`).toBeDefined();
    }
    // And a path no operation has is not priced: it gets the gateway's 404.
    expect(matchRoute(config.config.table, 'GET', undefined, ['no-such', 'path', 'anywhere', 'x', 'y', 'z', 'w'])).toBeUndefined();
  });
});

/**
 * The routable operations of a document, counted apart from the code under test: each path
 * item's get, put, post, delete, head and patch, through one local `$ref` (all the examples use).
 */
function countOperations(doc: unknown): number {
  const paths = (doc as { paths?: Record<string, Record<string, unknown>> }).paths ?? {};
  let n = 0;
  for (const [path, raw] of Object.entries(paths)) {
    if (path.startsWith('x-')) continue;
    let item: unknown = raw;
    const ref = raw['$ref'];
    if (typeof ref === 'string' && ref.startsWith('#/')) {
      item = doc;
      for (const t of ref.slice(2).split('/')) item = (item as Record<string, unknown> | undefined)?.[t.replaceAll('~1', '/').replaceAll('~0', '~')];
    }
    if (item !== null && typeof item === 'object') n += ROUTED.filter((m) => (item as Record<string, unknown>)[m] !== undefined).length;
  }
  return n;
}
