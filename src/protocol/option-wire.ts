/**
 * The wire form of one payment option: its v2 requirement (object and JSON), the part of its v1
 * requirement that does not depend on the request, and the informational `X-Payment-*` headers.
 *
 * Built once per option by the config compile (`withWire`, from `config/compile-price.ts`) and frozen on
 * the option, so the 402 challenge, requirement selection and discovery read a field instead of
 * rebuilding it per request. Addresses are used as they are: config checksums every one.
 *
 * The terms are typed structurally here rather than as `config/types`' `PaymentTerms`, because
 * `config/types` holds this wire form on each option: naming it back would be an import cycle.
 */
import { atomicToDecimal } from '../pricing.js';
import type { Address, WireRequirementV1, WireRequirementV2 } from './types.js';

/** What the wire form is computed from: a `PaymentTerms` of the compiled config fits. */
export interface WireTerms {
  readonly scheme: 'exact';
  readonly amount: bigint;
  readonly payTo: Address;
  readonly maxTimeoutSeconds: number;
  readonly asset: {
    readonly address: Address;
    readonly eip712Name: string;
    readonly eip712Version: string;
    readonly decimals: number;
    readonly symbol: string;
    readonly network: { readonly caip2: string; readonly v1Name: string | undefined };
  };
}

/** A v1 requirement without the fields its route and request supply (`resource`, `description`, `mimeType`). */
export type V1Terms = Omit<WireRequirementV1, 'resource' | 'description' | 'mimeType'>;

export interface OptionWire {
  /** The v2 `PaymentRequirements`, exactly as sent and as a client echoes it in `accepted`. */
  readonly v2: WireRequirementV2;
  /** `JSON.stringify(v2)`, spliced into every v2 challenge header. */
  readonly v2Json: string;
  /** Undefined when the network has no v1 name: v1 clients cannot pay there. */
  readonly v1: V1Terms | undefined;
  /** `X-Payment-Address`, `-Amount` (a human decimal), `-Currency`, `-Chain`: the seed's headers. */
  readonly infoHeaders: Readonly<Record<string, string>>;
}

/** Computes the wire form of `terms`. */
export function optionWire(terms: WireTerms): OptionWire {
  const { asset } = terms;
  const { network } = asset;
  const v2: WireRequirementV2 = Object.freeze({
    scheme: terms.scheme,
    network: network.caip2,
    amount: terms.amount.toString(),
    asset: asset.address,
    payTo: terms.payTo,
    maxTimeoutSeconds: terms.maxTimeoutSeconds,
    extra: Object.freeze({ name: asset.eip712Name, version: asset.eip712Version }),
  });
  const v1: V1Terms | undefined =
    network.v1Name === undefined
      ? undefined
      : Object.freeze({
          scheme: 'exact',
          network: network.v1Name,
          maxAmountRequired: v2.amount,
          payTo: v2.payTo,
          maxTimeoutSeconds: v2.maxTimeoutSeconds,
          asset: v2.asset,
          extra: v2.extra,
        });
  const infoHeaders = Object.freeze({
    'X-Payment-Address': terms.payTo,
    'X-Payment-Amount': atomicToDecimal(terms.amount, asset.decimals),
    'X-Payment-Currency': asset.symbol,
    'X-Payment-Chain': network.v1Name ?? network.caip2,
  });
  return Object.freeze({ v2, v2Json: JSON.stringify(v2), v1, infoHeaders });
}

/** `terms` with their wire form attached, frozen: how every payment option is made. */
export function withWire<T extends WireTerms>(terms: T): T & { readonly wire: OptionWire } {
  return Object.freeze({ ...terms, wire: optionWire(terms) });
}
