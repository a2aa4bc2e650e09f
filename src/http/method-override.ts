/**
 * Method overrides a framework would honour. Express's method-override, Laravel, Symfony and Rails
 * turn `POST /x` with `_method=GET` (in the query, or a form field) into a `GET /x`: with `GET /x`
 * priced and `POST /x` free, that is the priced answer for free. Override headers are stripped
 * before forwarding (proxy.ts); these two forms are refused with 400, since the gateway cannot
 * take them out without changing what the caller sent.
 *
 * The query form is refused on any request (no API needs it to mean anything else). A form body
 * is read (up to MAX_INSPECTED_FORM_BYTES) only for a POST with a form content type on a path
 * where another method meets another, priced route: elsewhere an override cannot be a free ride.
 */
import type { Readable } from 'node:stream';
import type { RouteConfig } from '../config/types.js';
import { matchRoute, ROUTE_METHODS, type RouteTable } from '../routes/table.js';

/** Largest form body read to look for `_method`; a larger one on such a path is refused (413). */
export const MAX_INSPECTED_FORM_BYTES = 1024 * 1024;

const OVERRIDE_FIELD = '_method';

/** True when the query string (with its `?`) has a `_method` parameter, in any case. */
export function queryOverridesMethod(search: string): boolean {
  if (!search.toLowerCase().includes('method')) return false;
  for (const key of new URLSearchParams(search).keys()) if (key.toLowerCase() === OVERRIDE_FIELD) return true;
  return false;
}

/** The form kinds frameworks read `_method` from. */
export function formKind(method: string, contentType: string | undefined): 'urlencoded' | 'multipart' | undefined {
  if (method !== 'POST' || contentType === undefined) return undefined;
  const type = contentType.split(';')[0]?.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return 'urlencoded';
  if (type === 'multipart/form-data') return 'multipart';
  return undefined;
}

/**
 * True when another method on this path meets a priced route other than this method's own: an
 * override there would be served an answer it did not pay for. (Elsewhere a form body is not read,
 * so uploads to free paths stay streams of any size.)
 */
export function overrideCouldReachPricedRoute(
  table: RouteTable<RouteConfig>,
  method: string,
  host: string | undefined,
  segments: readonly string[],
): boolean {
  const own = matchRoute(table, method, host, segments)?.route;
  return ROUTE_METHODS.some((other) => {
    if (other === method) return false;
    const route = matchRoute(table, other, host, segments)?.route;
    return route !== undefined && route !== own && route.price.kind === 'priced';
  });
}

/** True when a form body carries a `_method` field. */
export function formOverridesMethod(kind: 'urlencoded' | 'multipart', body: Buffer): boolean {
  const text = body.toString('latin1');
  if (kind === 'urlencoded') {
    for (const key of new URLSearchParams(text).keys()) if (key.toLowerCase() === OVERRIDE_FIELD) return true;
    return false;
  }
  return /content-disposition:[^\r\n]*\bname="?_method"?/i.test(text);
}

export type ReadBody = { readonly ok: true; readonly body: Buffer } | { readonly ok: false };

/** Reads a request body up to `limit` bytes; `ok: false` when it is longer. */
export async function readBounded(stream: Readable, limit: number): Promise<ReadBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += buffer.length;
    if (size > limit) return { ok: false };
    chunks.push(buffer);
  }
  return { ok: true, body: Buffer.concat(chunks) };
}
