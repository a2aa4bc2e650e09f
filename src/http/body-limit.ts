/**
 * The largest request body a route takes (`maxBodyBytes`, default `server.maxBodyBytes`).
 *
 * @fastify/http-proxy does not parse bodies: its content-type parser hands the request stream to
 * reply-from as it is, so fastify's `bodyLimit` never applies and the limit is the gateway's own,
 * in two places:
 *
 * - A declared `Content-Length` over the limit is refused with 413 in an `onRequest` hook that
 *   runs before the paywall: nothing is verified, reserved, settled or forwarded, and the
 *   connection is closed rather than the body read. node's parser holds such a body to exactly
 *   its declared length, so a body within it needs no counting.
 * - A chunked body (`Transfer-Encoding`) can only be counted as it streams. Just before it leaves
 *   for the upstream (proxy.ts), it is put behind a `BoundedBody`, which fails the stream at the
 *   first byte over the limit: undici then aborts the upstream request, which never gets a
 *   complete body, and the caller gets 413 (proxy.ts, onUpstreamError). A payment reserved for
 *   it is released; a `settlement: before` payment has settled already and keeps its receipt.
 *
 * Only chunked bodies get a stream in between: a Transform per request costs a write per chunk.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import type { Config } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { sendError } from './replies.js';
import type { RequestState, RequestStates } from './request-state.js';

/** The body limit of a request: its route's own, else the listener's default. */
export function bodyLimitOf(config: Config, state: RequestState | undefined): number {
  return state?.match?.route.maxBodyBytes ?? config.server.maxBodyBytes;
}

/** An `onRequest` hook (callback style: no promise per request) refusing a declared body over the limit. */
export function makeDeclaredBodyLimit(config: Config, states: RequestStates) {
  return (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const declared = request.headers['content-length'];
    if (declared === undefined) return done();
    const state = states.get(request.raw);
    if (Number(declared) <= bodyLimitOf(config, state)) return done();
    if (state) state.answer = { kind: 'invalid' };
    // The body is not read: closing is cheaper than draining up to its declared length.
    reply.header('connection', 'close');
    sendError(reply, 'GW_ERR_BODY_TOO_LARGE');
  };
}

/** A request body stream that fails with GW_ERR_BODY_TOO_LARGE past `limit` bytes. */
export class BoundedBody extends Transform {
  #left: number;
  /** Set when the body went over the limit (and the stream failed). */
  overLimit = false;

  constructor(limit: number) {
    super();
    this.#left = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#left -= chunk.length;
    if (this.#left >= 0) return callback(null, chunk);
    this.overLimit = true;
    callback(new GatewayError('GW_ERR_BODY_TOO_LARGE'));
  }
}

/**
 * The body to forward: a chunked request's own stream behind a BoundedBody, anything else (no
 * body, a form body already read into a Buffer) as it is. Piped, not `pipeline`d: a failed
 * pipeline would destroy the request and its socket, and the caller could not be told 413. A
 * caller that leaves mid-body fails the bounded stream, so the upstream request is aborted
 * rather than left waiting for the rest.
 */
export function boundedBody(raw: IncomingMessage, body: unknown, limit: number): unknown {
  if (body !== raw || raw.headers['transfer-encoding'] === undefined) return body;
  const bounded = new BoundedBody(limit);
  // The failure is read from `overLimit`; without a listener a failed stream would throw.
  bounded.on('error', () => {});
  raw.once('close', () => {
    if (!raw.complete) bounded.destroy(new Error('the caller closed the request before its body ended'));
  });
  raw.pipe(bounded);
  return bounded;
}
