/**
 * What the gateway sends a facilitator: the payment payload exactly as the client sent it, and
 * OUR requirement for the option it was matched to, in the payload's protocol version (§4.1).
 * Never the client's echo of a requirement: the facilitator checks the payment against what we
 * sent it, so a client cannot talk it into a cheaper price.
 */
import type { NetworkConfig, PaymentOption } from '../../config/types.js';
import { requirementV1, requirementV2 } from '../../protocol/challenge.js';
import type { DecodedPayment } from '../../protocol/types.js';
import type { FacilitatorKind } from './answers.js';
import type { FacilitatorRequestBody } from './client.js';
import type { PaymentContext } from '../ports.js';

/**
 * The `/verify` and `/settle` body, or `undefined` for a v1 payment on a network that has no v1
 * name (no v1 client can have paid there; requirement selection normally rules it out first).
 * `context` fills v1's `resource`, `description` and `mimeType`; legacy facilitators (`x402` 1.x)
 * validate `resource` as a URL. v2 requirements do not carry them.
 */
export function facilitatorRequestBody(
  payment: DecodedPayment,
  option: PaymentOption,
  context: PaymentContext,
): FacilitatorRequestBody | undefined {
  if (payment.x402Version === 2) {
    return { x402Version: 2, paymentPayload: payment.raw, paymentRequirements: requirementV2(option) };
  }
  const requirement = requirementV1(option, context.resourceUrl, context.route);
  return requirement === undefined ? undefined : { x402Version: 1, paymentPayload: payment.raw, paymentRequirements: requirement };
}

/** The kinds a facilitator must support for payments on `network`: v2 always, v1 when the chain has a v1 name. */
export function expectedFacilitatorKinds(network: NetworkConfig): FacilitatorKind[] {
  const kinds: FacilitatorKind[] = [{ x402Version: 2, scheme: 'exact', network: network.caip2 }];
  if (network.v1Name !== undefined) kinds.push({ x402Version: 1, scheme: 'exact', network: network.v1Name });
  return kinds;
}
