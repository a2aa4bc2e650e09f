import { describe, expect, it } from 'vitest';
import { normaliseUrl } from '../../src/routes/normalise.js';
import { compileRoute, matchRoute, type CompiledRoute, type RouteTable } from '../../src/routes/table.js';

function table(...routes: [string, string?][]): RouteTable<string> {
  const entries: CompiledRoute<string>[] = routes.map(([match, host]) => {
    const r = compileRoute(match, host, match);
    if (!r.ok) throw new Error(r.problem);
    return r.compiled;
  });
  return { entries };
}

function match(t: RouteTable<string>, method: string, url: string, host?: string) {
  const n = normaliseUrl(url);
  if (!n.ok) throw new Error(n.reason);
  return matchRoute(t, method, host, n.segments);
}

describe('normaliseUrl', () => {
  it.each([
    ['/', '/', ''],
    ['/a/b', '/a/b', ''],
    ['//a///b/', '/a/b', ''],
    ['/a/./b/../c', '/a/c', ''],
    ['/a%20b?x=%2F', '/a%20b', '?x=%2F'],
    ['/%61%62', '/ab', ''],
    ['/%2e%2e/', undefined, ''],
    ['/a/%2E%2E/b', '/b', ''],
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ''],
    ['/caf%C3%A9', '/caf%C3%A9', ''],
  ])('%s -> %s', (raw, path, search) => {
    const n = normaliseUrl(raw);
    if (path === undefined) return expect(n.ok).toBe(false);
    expect(n).toMatchObject({ ok: true, path, search });
  });

  it.each(['/a;b', '/a%3Bb', '/a%3bjsessionid=1', '/a%2Fb', '/a%2fb', '/a%5Cb', '/a\\b', '/%', '/%G0', '/%C3', '/..', '/a/../..', '/a%00', '/a%0A', 'a/b', '*', 'http://x/a'])(
    'refuses %s',
    (raw) => {
      expect(normaliseUrl(raw).ok).toBe(false);
    },
  );

  it('refuses ".." at a segment edge, which the proxy refuses after the paywall (a paid `/before/..a` was charged and answered 400)', () => {
    for (const raw of ['/files/..a', '/files/...', '/files/a../b', '/files/a../', '/files/%2E%2Ea', '/files/a%2e%2e/', '/a/b/../..c', '/..a?x=1']) {
      expect(normaliseUrl(raw), raw).toEqual({ ok: false, reason: '".." at the edge of a path segment' });
    }
    // Inside a segment, or at the end of the last one, reply-from forwards it: so does the gateway.
    for (const raw of ['/files/a..b', '/files/a..', '/files/a.b.', '/files/x?q=../y']) expect(normaliseUrl(raw).ok, raw).toBe(true);
  });

  it("forwards a raw '#' as %23, in the path and the query: as it came, Express read `/a/it's?#` as `/a/it%27s`", () => {
    expect(normaliseUrl("/a/it's?#")).toMatchObject({ ok: true, forward: "/a/it's", search: '?%23' });
    expect(normaliseUrl('/a#b?c=1#d#')).toMatchObject({ ok: true, segments: ['a#b'], forward: '/a%23b', search: '?c=1%23d%23' });
    expect(normaliseUrl('/a%23b?c=%23')).toMatchObject({ ok: true, path: '/a%23b', search: '?c=%23' });
  });

  it('refuses the characters that case-fold into ASCII, which met `/key` here and another route in Express (`/%E2%84%AAey`)', () => {
    for (const raw of ['/%E2%84%AAey', '/file%C5%BF', '/%C4%B1d', '/%C4%B0d', '/a/b%E2%84%AA']) {
      expect(normaliseUrl(raw), raw).toEqual({ ok: false, reason: 'a character that case-folds to an ASCII letter in path' });
    }
    expect(normaliseUrl('/stra%C3%9Fe/%EF%AC%81le')).toMatchObject({ ok: true, segments: ['straße', 'ﬁle'] });
  });

  it('the fast path for canonical paths answers exactly as the full decode and re-encode does', () => {
    // Percent-encoding one letter forces the full path; the answer must not change.
    const alphabet = "abcXYZ019-_.~!$&'()*+,=:@/";
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 3000; i++) {
      let path = '/';
      const length = 1 + (next() % 24);
      for (let j = 0; j < length; j++) path += alphabet[next() % alphabet.length];
      const letter = path.search(/[a-zA-Z]/);
      if (letter < 0) continue;
      const slow = path.slice(0, letter) + '%' + path.charCodeAt(letter).toString(16).toUpperCase() + path.slice(letter + 1);
      expect(normaliseUrl(path), path).toEqual(normaliseUrl(slow));
    }
  });
});

describe('route table', () => {
  const t = table(['GET /v1/weather'], ['POST /v1/jobs/:id'], ['* /files/**'], ['GET /a/*/c'], ['GET /host-only', 'api.example.com'], ['GET /wild', '*.example.com']);

  it('matches in order, first match wins, case-insensitively on literals', () => {
    expect(match(t, 'GET', '/v1/weather')?.route).toBe('GET /v1/weather');
    expect(match(t, 'GET', '/V1/Weather/')?.route).toBe('GET /v1/weather');
    expect(match(t, 'HEAD', '/v1/weather')?.route).toBe('GET /v1/weather');
    expect(match(t, 'POST', '/v1/weather')).toBeUndefined();
  });

  it('captures params with their case', () => {
    expect(match(t, 'POST', '/v1/jobs/AbC')).toEqual({ route: 'POST /v1/jobs/:id', params: { id: 'AbC' } });
    expect(match(t, 'POST', '/v1/jobs')).toBeUndefined();
    expect(match(t, 'POST', '/v1/jobs/a/b')).toBeUndefined();
  });

  it('* is one segment, ** is the rest (including none)', () => {
    expect(match(t, 'GET', '/a/b/c')?.route).toBe('GET /a/*/c');
    expect(match(t, 'GET', '/a/c')).toBeUndefined();
    expect(match(t, 'DELETE', '/files')?.route).toBe('* /files/**');
    expect(match(t, 'PUT', '/files/x/y/z')?.route).toBe('* /files/**');
  });

  it('matches hosts without their port, exactly or by suffix', () => {
    expect(match(t, 'GET', '/host-only', 'API.example.com:8402')?.route).toBe('GET /host-only');
    expect(match(t, 'GET', '/host-only', 'evil.com')).toBeUndefined();
    expect(match(t, 'GET', '/host-only')).toBeUndefined();
    expect(match(t, 'GET', '/wild', 'a.example.com')?.route).toBe('GET /wild');
    expect(match(t, 'GET', '/wild', 'example.com')).toBeUndefined();
  });

  it('treats a fully qualified Host (trailing dot) as the same host, so it cannot skip a host-scoped priced route', () => {
    expect(match(t, 'GET', '/host-only', 'api.example.com.')?.route).toBe('GET /host-only');
    expect(match(t, 'GET', '/host-only', 'api.example.com.:8402')?.route).toBe('GET /host-only');
    expect(match(t, 'GET', '/wild', 'a.example.com.')?.route).toBe('GET /wild');
    expect(match(table(['GET /x', 'api.example.com.']), 'GET', '/x', 'api.example.com')?.route).toBe('GET /x');
  });

  it('* means every method the gateway forwards, not methods no proxy route takes', () => {
    expect(match(t, 'PATCH', '/files/a')?.route).toBe('* /files/**');
    expect(match(t, 'PROPFIND', '/files/a')).toBeUndefined();
    expect(match(t, 'OPTIONS', '/files/a')).toBeUndefined();
  });

  it.each(['GET', 'GET weather', 'FETCH /a', 'GET /a/**/b', 'GET /:1x', 'GET /a*b', 'GET /a%20b'])('refuses pattern %j', (p) => {
    expect(compileRoute(p, undefined, p).ok).toBe(false);
  });
});
