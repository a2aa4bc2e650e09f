/**
 * Where the route table meets fastify's router.
 *
 * `rewriteUrl` (a fastify server option, run before routing) normalises the path once, matches
 * the route table, stores both in the request state, and hands fastify the normalised URL, so the
 * proxy forwards exactly the path that was matched. The `x402upstream` router constraint then
 * sends the request to the @fastify/http-proxy instance of the matched route's upstream; a
 * request that matched nothing (or whose path is invalid) finds no route and lands in the 404
 * handler. Fail closed: there is no way to the upstream that skips the match.
 */
import type { FastifyServerOptions } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import type { Config, RouteConfig } from '../config/types.js';
import { normaliseUrl } from '../routes/normalise.js';
import { matchRoute, pathExtendsAny, pathMatchesAny } from '../routes/table.js';
import { newRequestState, type RequestStates } from './request-state.js';
import { settlementIdOf } from './settlement-status.js';

export const UPSTREAM_CONSTRAINT = 'x402upstream';
/** Constraint value of requests that must not reach any upstream. */
const NO_UPSTREAM = '';

/**
 * One host as RFC 9110 allows it in `Host`: a DNS-style name or IPv4 address, or a bracketed IPv6
 * address, with an optional numeric port. Anything else (`a.example, b.example`, `a:443:1`, `%`
 * escapes) is refused: the gateway routes on this header, and an upstream that picks a tenant
 * from it must not read another host out of it than the gateway did.
 */
const HOST = /^(?:[A-Za-z0-9._~-]+|\[([0-9A-Fa-f:.]+)\])(?::[0-9]{1,5})?$/;

/** True for a Host header value the gateway routes on; absent (HTTP/1.0) is fine. */
export function isValidHost(host: string | undefined): boolean {
  if (host === undefined) return true;
  const m = HOST.exec(host);
  return m !== null && (m[1] === undefined || isIPv6(m[1]));
}

/** Builds the `rewriteUrl` server option. */
export function makeRewriteUrl(config: Config, states: RequestStates): (req: IncomingMessage) => string {
  return (req) => {
    const target = normaliseUrl(req.url ?? '/');
    if (!isValidHost(req.headers.host)) {
      states.set(req, newRequestState(target, undefined, undefined, true));
    } else if (target.ok && isDiscovery(target.segments, req.method)) {
      states.set(req, newRequestState(target, undefined, 'discovery'));
    } else if (target.ok && settlementIdOf(target.segments, req.method) !== undefined) {
      states.set(req, newRequestState(target, undefined, 'settlement_status'));
    } else {
      const match = target.ok ? matchRoute(config.table, req.method ?? 'GET', req.headers.host, target.segments) : undefined;
      states.set(req, newRequestState(target, match));
    }
    return target.ok ? target.forward + target.search : '/';
  };
}

/** `GET /.well-known/x402` is the gateway's own: it lists the routes it enforces. */
function isDiscovery(segments: readonly string[], method: string | undefined): boolean {
  return segments.length === 2 && segments[0] === '.well-known' && segments[1] === 'x402' && (method === 'GET' || method === 'HEAD');
}

/** Names the upstream a request is routed to, or NO_UPSTREAM. */
function upstreamOf(config: Config, states: RequestStates, req: IncomingMessage): string {
  const state = states.get(req);
  if (!state || !state.target.ok || state.ownEndpoint || state.invalidHost) return NO_UPSTREAM;
  if (state.match) return state.match.route.upstream.name;
  if (config.unmatched !== 'free' || !config.defaultUpstream) return NO_UPSTREAM;
  // Free passage is for paths nobody prices, not for a priced path under another method or Host.
  const priced = (route: RouteConfig) => route.price.kind === 'priced';
  if (pathMatchesAny(config.table, state.target.segments, priced)) return NO_UPSTREAM;
  if (config.protectPrefixes && pathExtendsAny(config.table, state.target.segments, priced)) return NO_UPSTREAM;
  return config.defaultUpstream.name;
}

/** A find-my-way constraint strategy keyed on the upstream name. */
type ConstraintStrategy = NonNullable<NonNullable<FastifyServerOptions['routerOptions']>['constraints']>[string];

export function upstreamConstraint(config: Config, states: RequestStates): ConstraintStrategy {
  return {
    name: UPSTREAM_CONSTRAINT,
    mustMatchWhenDerived: true,
    storage() {
      const handlers = new Map<string, never>();
      return {
        get: (value: string) => handlers.get(value) ?? null,
        set: (value: string, handler: never) => void handlers.set(value, handler),
      };
    },
    deriveConstraint: (req: IncomingMessage) => upstreamOf(config, states, req),
    validate(value: unknown) {
      if (typeof value !== 'string') throw new Error('x402upstream constraint must be a string');
    },
  };
}
