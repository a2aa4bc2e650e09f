/**
 * `GET /.well-known/x402/settlements/:id`: what became of a deferred payment, for the caller
 * holding its receipt (`extra.status` names this URL). The id is 128 random bits, so the answer is
 * for whoever was given it; an id of another shape is not looked up.
 */
import type { FastifyReply } from 'fastify';
import type { DeferredStatus, SettlementQueue } from '../payments/ports.js';

/** What `Checkout.defer` makes: 16 random bytes, base64url. */
const SETTLEMENT_ID = /^[A-Za-z0-9_-]{22}$/;

/** The path segments of a status request, or undefined for any other path. */
export function settlementIdOf(segments: readonly string[], method: string | undefined): string | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (segments.length !== 4 || segments[0] !== '.well-known' || segments[1] !== 'x402' || segments[2] !== 'settlements') return undefined;
  return segments[3];
}

/** The answer's body: `queued` until a batch's outcome, then `settled` with the transaction, or `failed`. */
export function settlementStatusBody(status: DeferredStatus): Record<string, string> {
  const state = status.state === 'batched' ? 'queued' : status.state;
  return {
    id: status.id,
    status: state,
    ...(status.transaction === '' || state === 'queued' ? {} : { transaction: status.transaction }),
    ...(state === 'failed' ? { reason: status.reason } : {}),
  };
}

/** Answers a status request; a store fault propagates (the error handler's 503). */
export async function sendSettlementStatus(reply: FastifyReply, queue: Pick<SettlementQueue, 'deferredStatus'>, id: string): Promise<FastifyReply> {
  const status = SETTLEMENT_ID.test(id) ? await queue.deferredStatus(id) : undefined;
  reply.header('cache-control', 'no-store');
  if (status === undefined) return reply.code(404).type('application/json; charset=utf-8').send({ error: 'unknown settlement id' });
  return reply.type('application/json; charset=utf-8').send(settlementStatusBody(status));
}
