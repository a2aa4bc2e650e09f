/**
 * The 402 challenge, dual stack on one response: the v2 `PAYMENT-REQUIRED` header (base64 JSON
 * `PaymentRequired`) for v2 clients, a v1 `PaymentRequirementsResponse` JSON body for v1 clients
 * (v2 clients read the header and ignore the body), and the informational `X-Payment-*` headers.
 *
 * This runs on every unpaid request, so everything that does not depend on the request is read
 * from the wire form the config compile attached to each option (`option.wire`, see
 * `option-wire.ts`). Per request: the option JSONs are joined into `accepts`, and each v1
 * requirement gets the resource URL (and its route's description and mime type) filled in.
 */
import type { PaymentOption, RouteConfig } from '../config/types.js';
import type { V1Terms } from './option-wire.js';
import type { WireRequirementV1, WireRequirementV2 } from './types.js';

/** The v2 challenge header. */
export const PAYMENT_REQUIRED_HEADER = 'PAYMENT-REQUIRED';

/** What a challenge needs from its route. */
export type ChallengeRoute = Pick<RouteConfig, 'description' | 'mimeType'>;

export interface ChallengeInput {
  readonly route: ChallengeRoute;
  /** Absolute URL of the requested resource, query string included. */
  readonly resourceUrl: string;
  /** Why payment is required: `Payment required`, or the reason the last payment was refused. */
  readonly error: string;
  /** In order of preference: clients take the first entry they can pay. */
  readonly options: readonly PaymentOption[];
}

/** The v1 `PaymentRequirementsResponse`, sent as the 402 body. */
export interface ChallengeV1Body {
  readonly x402Version: 1;
  readonly error: string;
  readonly accepts: readonly WireRequirementV1[];
}

export interface Challenge {
  readonly status: 402;
  /** Value of the `PAYMENT-REQUIRED` header. */
  readonly v2Header: string;
  readonly v1Body: ChallengeV1Body;
  /** `X-Payment-Address`, `X-Payment-Amount`, `X-Payment-Currency`, `X-Payment-Chain`, from the first option. */
  readonly infoHeaders: Readonly<Record<string, string>>;
}

/** The v2 `PaymentRequirements` of an option, exactly as sent and as a client echoes it in `accepted`. */
export function requirementV2(option: PaymentOption): WireRequirementV2 {
  return option.wire.v2;
}

function v1Of(terms: V1Terms, resourceUrl: string, route: ChallengeRoute): WireRequirementV1 {
  // Keys in the order v1 clients have always seen. No `outputSchema` key: the v1 client's schema
  // rejects `null`, and we have none to describe.
  return {
    scheme: terms.scheme,
    network: terms.network,
    maxAmountRequired: terms.maxAmountRequired,
    resource: resourceUrl,
    description: route.description,
    mimeType: route.mimeType,
    payTo: terms.payTo,
    maxTimeoutSeconds: terms.maxTimeoutSeconds,
    asset: terms.asset,
    extra: terms.extra,
  };
}

/**
 * The v1 `PaymentRequirements` of an option for one resource, or `undefined` when the option's
 * network has no v1 name (v1 clients cannot pay there).
 */
export function requirementV1(option: PaymentOption, resourceUrl: string, route: ChallengeRoute): WireRequirementV1 | undefined {
  const { v1 } = option.wire;
  return v1 === undefined ? undefined : v1Of(v1, resourceUrl, route);
}

/** Builds the 402 answer for an unpaid (or refused) request to a priced route. */
export function buildChallenge(input: ChallengeInput): Challenge {
  const { route, resourceUrl, error, options } = input;
  const first = options[0];
  // A priced route with no way to pay is a config bug that parseConfig rules out; not a client's fault.
  if (first === undefined) throw new Error('a payment challenge needs at least one payment option');
  let acceptsJson = '';
  const accepts: WireRequirementV1[] = [];
  for (const option of options) {
    acceptsJson += (acceptsJson === '' ? '' : ',') + option.wire.v2Json;
    if (option.wire.v1 !== undefined) accepts.push(v1Of(option.wire.v1, resourceUrl, route));
  }
  const v2Json =
    `{"x402Version":2,"error":${JSON.stringify(error)},` +
    `"resource":{"url":${JSON.stringify(resourceUrl)},"description":${JSON.stringify(route.description)},` +
    `"mimeType":${JSON.stringify(route.mimeType)}},"accepts":[${acceptsJson}]}`;
  return {
    status: 402,
    v2Header: Buffer.from(v2Json, 'utf8').toString('base64'),
    v1Body: { x402Version: 1, error, accepts },
    infoHeaders: first.wire.infoHeaders,
  };
}
