/**
 * Re-delivery: an authorization buys one answer. A caller that did not get it (answered
 * `settlement_pending`, its replica died, the connection broke before the last byte, or a
 * `settlement: before` upstream failed with a 5xx) may present the same payment header again,
 * for the same method and resource URL, to any replica: once the settlement is confirmed it is
 * served again, without a second charge, at most `limits.redeliveries` times, and never after an
 * answer with status < 500 reached it completely. While the settlement is unconfirmed, the
 * re-presentation waits, then hears `settlement_pending`: never a fresh challenge that invites a
 * second signature.
 *
 * This file is the judgement alone (pure); checkout.ts asks the ledger and acts on it.
 */
import { createHash } from 'node:crypto';
import { GATEWAY_REASON } from '../protocol/reasons.js';
import type { DecodedPayment } from '../protocol/types.js';
import type { Delivery, DeliveryTerms } from './ports.js';


/**
 * What a payment header bought: the request it names, and its signature (hashed). The resource
 * is the method, path and query: replicas reached under different hosts (a pod's own address, the
 * service's) serve one resource.
 */
export function deliveryTerms(payment: DecodedPayment, method: string, resourceUrl: string): DeliveryTerms {
  const url = new URL(resourceUrl);
  return {
    resource: `${method.toUpperCase()} ${url.pathname}${url.search}`,
    signature: createHash('sha256').update(payment.payload.signature.toLowerCase()).digest('hex'),
  };
}

/**
 * `serve`: settled, and the paying request is over without having delivered; `wait`: the
 * settlement (or the paying request) is still under way; `refuse`: a replay (another resource,
 * another signature, delivered already, re-deliveries used up, nothing charged).
 */
export type RedeliveryVerdict = 'serve' | 'wait' | 'refuse';

export function judgeRedelivery(delivery: Delivery | undefined, terms: DeliveryTerms, max: number): RedeliveryVerdict {
  if (delivery === undefined) return 'refuse';
  if (delivery.resource !== terms.resource || delivery.signature !== terms.signature) return 'refuse';
  if (delivery.delivered || delivery.redeliveries >= max) return 'refuse';
  switch (delivery.status) {
    case 'settled':
      // Not ended and not reconciled: the paying request may be delivering its answer right now.
      return delivery.ended || delivery.reason === GATEWAY_REASON.reconciled ? 'serve' : 'wait';
    case 'queued':
      // Owed (settlement: deferred): as good as settled for the caller once the paying request is over.
      return delivery.ended ? 'serve' : 'wait';
    case 'pending':
      return 'wait';
    default:
      return 'refuse';
  }
}
