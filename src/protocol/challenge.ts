/**
 * The 402 challenge, dual stack on one response: the v2 `PAYMENT-REQUIRED` header (base64 JSON
 * `PaymentRequired`) for v2 clients, a v1 `PaymentRequirementsResponse` JSON body for v1 clients
 * (v2 clients read the header and ignore the body), and the informational `X-Payment-*` headers.
 *
 * This runs on every unpaid request, so everything that does not depend on the request (the wire
 * requirement of each option, its JSON, the info headers) is computed once per option or option
 * list and cached in a WeakMap keyed on the frozen config object.
 */
import { formatUnits, getAddress } from 'viem';
import type { PaymentOption, RouteConfig } from '../config/types.js';
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

interface CompiledOption {
  readonly v2: WireRequirementV2;
  /** `JSON.stringify(v2)`, spliced into every v2 header. */
  readonly v2Json: string;
  readonly v1Name: string | undefined;
}

type V1Option = CompiledOption & { readonly v1Name: string };

interface CompiledOptions {
  readonly acceptsJson: string;
  /** Options that v1 clients can pay: only networks with a legacy v1 name. */
  readonly v1: readonly V1Option[];
  readonly infoHeaders: Readonly<Record<string, string>>;
}

const optionCache = new WeakMap<PaymentOption, CompiledOption>();
const optionsCache = new WeakMap<readonly PaymentOption[], CompiledOptions>();

function compileOption(option: PaymentOption): CompiledOption {
  const cached = optionCache.get(option);
  if (cached !== undefined) return cached;
  const { asset } = option;
  const v2: WireRequirementV2 = Object.freeze({
    scheme: option.scheme,
    network: asset.network.caip2,
    amount: option.amount.toString(),
    asset: getAddress(asset.address),
    payTo: getAddress(option.payTo),
    maxTimeoutSeconds: option.maxTimeoutSeconds,
    extra: Object.freeze({ name: asset.eip712Name, version: asset.eip712Version }),
  });
  const compiled: CompiledOption = { v2, v2Json: JSON.stringify(v2), v1Name: asset.network.v1Name };
  optionCache.set(option, compiled);
  return compiled;
}

function compileOptions(options: readonly PaymentOption[]): CompiledOptions {
  const cached = optionsCache.get(options);
  if (cached !== undefined) return cached;
  const first = options[0];
  // A priced route with no way to pay is a config bug that parseConfig rules out; not a client's fault.
  if (first === undefined) throw new Error('a payment challenge needs at least one payment option');
  const all = options.map(compileOption);
  const compiled: CompiledOptions = {
    acceptsJson: `[${all.map((o) => o.v2Json).join(',')}]`,
    v1: all.filter((o): o is V1Option => o.v1Name !== undefined),
    infoHeaders: Object.freeze(infoHeadersOf(first)),
  };
  optionsCache.set(options, compiled);
  return compiled;
}

/** The seed's informational headers: where to pay, how much (a human decimal), in what, on which chain. */
function infoHeadersOf(option: PaymentOption): Record<string, string> {
  const { asset } = option;
  return {
    'X-Payment-Address': getAddress(option.payTo),
    'X-Payment-Amount': formatUnits(option.amount, asset.decimals),
    'X-Payment-Currency': asset.symbol,
    'X-Payment-Chain': asset.network.v1Name ?? asset.network.caip2,
  };
}

/** The v2 `PaymentRequirements` of an option, exactly as sent and as a client echoes it in `accepted`. */
export function requirementV2(option: PaymentOption): WireRequirementV2 {
  return compileOption(option).v2;
}

function v1Of(compiled: CompiledOption, v1Name: string, resourceUrl: string, route: ChallengeRoute): WireRequirementV1 {
  const { v2 } = compiled;
  // No `outputSchema` key: the v1 client's schema rejects `null`, and we have none to describe.
  return {
    scheme: 'exact',
    network: v1Name,
    maxAmountRequired: v2.amount,
    resource: resourceUrl,
    description: route.description,
    mimeType: route.mimeType,
    payTo: v2.payTo,
    maxTimeoutSeconds: v2.maxTimeoutSeconds,
    asset: v2.asset,
    extra: v2.extra,
  };
}

/**
 * The v1 `PaymentRequirements` of an option for one resource, or `undefined` when the option's
 * network has no v1 name (v1 clients cannot pay there).
 */
export function requirementV1(option: PaymentOption, resourceUrl: string, route: ChallengeRoute): WireRequirementV1 | undefined {
  const compiled = compileOption(option);
  return compiled.v1Name === undefined ? undefined : v1Of(compiled, compiled.v1Name, resourceUrl, route);
}

/** Builds the 402 answer for an unpaid (or refused) request to a priced route. */
export function buildChallenge(input: ChallengeInput): Challenge {
  const { route, resourceUrl, error } = input;
  const compiled = compileOptions(input.options);
  const v2Json =
    `{"x402Version":2,"error":${JSON.stringify(error)},` +
    `"resource":{"url":${JSON.stringify(resourceUrl)},"description":${JSON.stringify(route.description)},` +
    `"mimeType":${JSON.stringify(route.mimeType)}},"accepts":${compiled.acceptsJson}}`;
  const accepts = compiled.v1.map((option) => v1Of(option, option.v1Name, resourceUrl, route));
  return {
    status: 402,
    v2Header: Buffer.from(v2Json, 'utf8').toString('base64'),
    v1Body: { x402Version: 1, error, accepts },
    infoHeaders: compiled.infoHeaders,
  };
}
