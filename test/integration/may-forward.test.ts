/**
 * The last check before a request leaves for its upstream (proxy.ts `mayForward`): a priced request
 * goes on only with a settled or reserved payment, whatever the paywall's reply did. Pinned with
 * real fastify requests, one per decision, because a later onSend hook (compression, etag) can
 * leave a challenged request's reply unsent when its hook chain moves on.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { PendingPayment } from '../../src/http/pending-payment.js';
import { mayForward } from '../../src/http/forward-guard.js';
import { newRequestState, type PaywallDecision } from '../../src/http/request-state.js';
import type { AuthorizedPayment, Checkout } from '../../src/payments/checkout.js';
import { makeOption, makeRoute } from '../helpers/options.js';

const route = makeRoute([makeOption()]);
const releases: string[] = [];
const checkout = { release: async (_a: AuthorizedPayment, reason: string) => void releases.push(reason) } as unknown as Checkout;

function payment(): PendingPayment {
  const authorized = { payer: '0x1111111111111111111111111111111111111111', request: { route } } as unknown as AuthorizedPayment;
  return new PendingPayment(authorized, { checkout, countUnchargedForward: () => {} });
}

/** What mayForward says for a request with this decision, and what the client then received. */
async function forwardVerdict(decision: PaywallDecision): Promise<{ forwarded: boolean; status: number }> {
  const app = Fastify();
  let forwarded = false;
  app.get('/', (request, reply) => {
    const state = newRequestState({ ok: true, segments: [], path: '/', forward: '/', search: '' }, { route, params: {} });
    state.decision = decision;
    forwarded = mayForward(state, request, reply);
    if (forwarded) return reply.send('upstream');
    return reply;
  });
  const res = await app.inject({ method: 'GET', url: '/' });
  await app.close();
  return { forwarded, status: res.statusCode };
}

describe('mayForward', () => {
  it.each<[string, PaywallDecision]>([
    ['challenged', { kind: 'challenged' }],
    ['refused', { kind: 'refused', reason: 'invalid_exact_evm_signature' }],
    ['undecided', { kind: 'none' }],
  ])('stops a priced request whose paywall said %s, answering 500 if nothing was sent', async (_name, decision) => {
    expect(await forwardVerdict(decision)).toEqual({ forwarded: false, status: 500 });
  });

  it('lets a reserved payment, a proof and an allowlisted caller through', async () => {
    expect((await forwardVerdict({ kind: 'payment', payment: payment() })).forwarded).toBe(true);
    expect((await forwardVerdict({ kind: 'proof', payer: '0x1', transaction: '0x2', option: makeOption() })).forwarded).toBe(true);
    expect((await forwardVerdict({ kind: 'allowlisted' })).forwarded).toBe(true);
  });

  it('stops a payment already released, and releases nothing twice', async () => {
    const p = payment();
    await p.release('upstream_status_500');
    const before = releases.length;
    expect((await forwardVerdict({ kind: 'payment', payment: p })).forwarded).toBe(false);
    expect(releases.length).toBe(before);
  });
});
