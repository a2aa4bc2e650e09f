/**
 * Path normalisation: the one place a raw request path becomes the path that is both matched
 * against the route table and forwarded upstream.
 *
 * Matching one form and forwarding another is how paywalls get bypassed: `/free/..%2Fpaid`,
 * `//paid`, `/paid/` or `/PAID` must either be charged as `/paid` or refused, never passed free.
 * So the gateway decodes each segment once, resolves `.` and `..`, drops empty segments, and
 * re-encodes canonically; the upstream receives exactly the segments that were matched. The one
 * thing kept from the caller's form is a trailing slash (`forward`): it changes no segment, so it
 * cannot reach another route, but frameworks that redirect to add it back (Django's
 * APPEND_SLASH, DRF routers) would otherwise answer a charged 301 to every paid request.
 * Case is left alone in what is forwarded (IDs are case-sensitive) and ignored when matching
 * literal segments, so a case variant is charged like the original: fail closed.
 *
 * Refused outright (400): a malformed `%` escape, an encoded `/` or a `\` in any form (upstreams
 * disagree on whether they separate segments), a `;` in any form (servlet containers strip
 * `;params` from a segment, so `/paid;x` would match no priced route here and still reach
 * `/paid` there), control characters, `..` above the root, a forwarded path with `..` at a
 * segment's edge (`/..a`, `/a../b`: see EDGE_DOT_DOT), the four characters that case-fold into
 * ASCII (ASCII_CASE_ALIAS), and anything that is not an origin-form path.
 *
 * A raw `#` is not valid in a request target (RFC 9112 §3.2: it has no fragment), but node's
 * parser lets it through. In the path it is a character of its segment (forwarded as `%23`); in
 * the query it is forwarded as `%23` too. As it came, it made Express's URL parser take its slow
 * path, which escapes `'`: `/it's?#` reached the upstream as `/it%27s`, where another route of
 * the upstream's could take it.
 */

export type NormalisedPath =
  | {
      readonly ok: true;
      /** Decoded segments, e.g. ['v1', 'jobs', 'a b']. */
      readonly segments: readonly string[];
      /** Canonically encoded path, e.g. `/v1/jobs/a%20b`: what routes and receipts see. */
      readonly path: string;
      /** `path` with the caller's trailing slash, if it sent one: what the upstream receives. */
      readonly forward: string;
      /** The raw query string with its `?`, or ''. Forwarded untouched but for a `#`, as `%23`. */
      readonly search: string;
    }
  | { readonly ok: false; readonly reason: string };

/** Longest request target the gateway will parse; far above any real API path. */
export const MAX_PATH_LENGTH = 8192;

// eslint-disable-next-line no-control-regex
const FORBIDDEN_DECODED = /[\u0000-\u001f\u007f/\\;]/;
/**
 * The characters that some router's case rules turn into an ASCII letter: the Kelvin sign
 * (`K`, lower case `k`), `ſ` (upper case `S`; `/s/iu` matches it), `ı` (upper case `I`) and `İ`
 * (lower case `i` + a dot, `i` for .NET). The route table lower-cases, so `/\u212Aey` met a
 * `/key` route, while Express (which matches the encoded path) sent it to another route of the
 * upstream's. Routers disagree on them; no real path needs them: refused.
 */
const ASCII_CASE_ALIAS = /[\u0130\u0131\u017f\u212a]/;

/**
 * A path that is already canonical: one or more non-empty segments of only the characters
 * `encodeSegment` leaves as they are (so no `%` escapes), none of them `.` or `..`. Most request
 * paths are; they skip the decode and re-encode of every segment.
 */
const CANONICAL_PATH = /^(?:\/[A-Za-z0-9\-_.~!$&'()*+,=:@]+)+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/**
 * `..` at the start of a segment or at the end of one that a `/` follows. @fastify/reply-from
 * refuses to forward any path containing `/..` or `../` (its guard against traversal), so such a
 * request was matched, and paid, and then answered 400 without reaching the upstream: under
 * `settlement: before` the payer was charged for nothing. Refused here, before the paywall.
 * (`.` is never percent-encoded in a normalised path, so the encoded form shows every one.)
 */
const EDGE_DOT_DOT = /\/\.\.|\.\.\//;

const EDGE_DOT_DOT_REFUSAL: NormalisedPath = Object.freeze({ ok: false, reason: '".." at the edge of a path segment' });

/** Normalises the request target of an HTTP/1.1 request (`req.url`). */
export function normaliseUrl(rawUrl: string): NormalisedPath {
  if (rawUrl.length > MAX_PATH_LENGTH) return { ok: false, reason: 'path is too long' };
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const search = q === -1 ? '' : rawUrl.slice(q).replaceAll('#', '%23');
  if (!rawPath.startsWith('/')) return { ok: false, reason: 'path must start with /' };
  if (CANONICAL_PATH.test(rawPath) && !DOT_SEGMENT.test(rawPath)) {
    if (EDGE_DOT_DOT.test(rawPath)) return EDGE_DOT_DOT_REFUSAL;
    return { ok: true, segments: rawPath.slice(1).split('/'), path: rawPath, forward: rawPath, search };
  }
  if (rawPath.includes('\\')) return { ok: false, reason: 'backslash in path' };

  const segments: string[] = [];
  for (const raw of rawPath.split('/')) {
    if (raw === '') continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return { ok: false, reason: 'malformed percent-escape in path' };
    }
    if (FORBIDDEN_DECODED.test(decoded)) return { ok: false, reason: 'encoded slash, backslash or control character in path' };
    if (ASCII_CASE_ALIAS.test(decoded)) return { ok: false, reason: 'a character that case-folds to an ASCII letter in path' };
    if (decoded === '.') continue;
    if (decoded === '..') {
      if (segments.pop() === undefined) return { ok: false, reason: 'path escapes the root' };
      continue;
    }
    segments.push(decoded);
  }
  const path = '/' + segments.map(encodeSegment).join('/');
  const forward = path !== '/' && rawPath.endsWith('/') ? `${path}/` : path;
  if (EDGE_DOT_DOT.test(forward)) return EDGE_DOT_DOT_REFUSAL;
  return { ok: true, segments, path, forward, search };
}

/**
 * RFC 3986 path-segment encoding: everything but unreserved characters, the sub-delims but `;`
 * (refused before this), `:` and `@` is percent-encoded.
 */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%(?:3A|40|21|24|26|27|28|29|2A|2B|2C|3D)/g, (e) =>
    String.fromCharCode(Number.parseInt(e.slice(1), 16)),
  );
}
