/**
 * Who may use the admin listener. Three tiers, decided by path:
 *
 * - `/healthz` and `/readyz` are always open: the kubelet probes them and cannot send a token.
 * - `/metrics` needs `admin.metricsToken` when one is set, else is open (Prometheus scrapes it
 *   from the sources the NetworkPolicy admits); a scraper's token grants nothing else.
 * - Everything else (the dashboard, `/admin/api/*`, `POST /admin/reload`, and unknown paths, so
 *   a 404 tells nothing) needs `admin.token` when one is set.
 *
 * A token comes as `Authorization: Bearer <token>`. The browser page alone may carry it as
 * `?token=` on `GET /dashboard`, since a link cannot set a header; the page then sends it as a
 * Bearer header on its own API calls and takes it out of the address bar. A header rather than a
 * cookie: a cookie is sent by the browser on any cross-site request, so `POST /admin/reload`
 * would need CSRF protection; a header is only sent by code that holds the token.
 *
 * Tokens are compared as sha256 digests with timingSafeEqual: equal lengths whatever was sent,
 * so the comparison's time says nothing about the token or its length.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, GatewayError } from '../errors.js';

export interface AdminTokens {
  readonly token: string | undefined;
  readonly metricsToken: string | undefined;
}

const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);
/** The one path that accepts `?token=`: the page a browser opens from a link. */
export const DASHBOARD_PATH = '/dashboard';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Whether `presented` is `expected`, in time independent of both. */
export function tokenMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header; undefined for any other header. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** Which token a path needs: undefined when it is open. */
export function requiredToken(path: string, tokens: AdminTokens): string | undefined {
  if (OPEN_PATHS.has(path)) return undefined;
  if (path === '/metrics') return tokens.metricsToken;
  return tokens.token;
}

/** A fastify onRequest hook enforcing the rules above; answers 401 itself. */
export function adminAuthHook(tokens: AdminTokens) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = request.url.split('?', 1)[0] ?? '';
    const expected = requiredToken(path, tokens);
    if (expected === undefined) return;
    const fromQuery = path === DASHBOARD_PATH && request.method === 'GET' ? queryToken(request.query) : undefined;
    const presented = bearerToken(request.headers.authorization) ?? fromQuery;
    if (presented !== undefined && tokenMatches(presented, expected)) return;
    await reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="x402-gateway admin"')
      .header('cache-control', 'no-store')
      .send(errorBody(new GatewayError('GW_ERR_ADMIN_UNAUTHORIZED')));
  };
}

function queryToken(query: unknown): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const value = (query as Record<string, unknown>)['token'];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
