/**
 * Which of a route's payment options a decoded payment is paying. Selection only finds the
 * option; whether the payment is good for it (signature, amount, recipient, time) is the
 * verifier's job.
 */
import type { PaymentOption } from '../config/types.js';
import { GATEWAY_REASON } from './reasons.js';
import type { DecodedPayment, WireRequirementV2 } from './types.js';

/** The protocol's reasons: `invalid_network` when no option is on the payment's network at all. */
export type NoMatchReason = typeof GATEWAY_REASON.noMatchingRequirements | typeof GATEWAY_REASON.invalidNetwork;

export type SelectOutcome =
  | { readonly kind: 'ok'; readonly option: PaymentOption }
  | { readonly kind: 'no_match'; readonly reason: NoMatchReason };

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * The official v2 server's rule: the core fields deep-equal, and our `extra` is contained in the
 * echoed one. Our `extra` is exactly `{name, version}`, so those two must be equal.
 */
function matchesV2(ours: WireRequirementV2, accepted: WireRequirementV2): boolean {
  return (
    ours.scheme === accepted.scheme &&
    ours.network === accepted.network &&
    ours.amount === accepted.amount &&
    sameAddress(ours.asset, accepted.asset) &&
    sameAddress(ours.payTo, accepted.payTo) &&
    ours.maxTimeoutSeconds === accepted.maxTimeoutSeconds &&
    ours.extra['name'] === accepted.extra['name'] &&
    ours.extra['version'] === accepted.extra['version']
  );
}

function selectV2(accepted: WireRequirementV2, options: readonly PaymentOption[]): SelectOutcome {
  const option = options.find((o) => matchesV2(o.wire.v2, accepted));
  if (option !== undefined) return { kind: 'ok', option };
  const knownNetwork = options.some((o) => o.asset.network.caip2 === accepted.network);
  return { kind: 'no_match', reason: knownNetwork ? GATEWAY_REASON.noMatchingRequirements : GATEWAY_REASON.invalidNetwork };
}

/**
 * A v1 payload names only scheme and network, like x402-express matches it. When several options
 * share the network, the one the authorization's amount and recipient fit is the one meant; the
 * asset itself is visible only through the signature's EIP-712 domain, which verification checks.
 */
function selectV1(payment: DecodedPayment, options: readonly PaymentOption[]): SelectOutcome {
  const onNetwork = options.filter((o) => o.asset.network.v1Name === payment.network);
  if (onNetwork.length === 0) return { kind: 'no_match', reason: GATEWAY_REASON.invalidNetwork };
  const candidates = onNetwork.filter((o) => o.scheme === payment.scheme);
  const { value, to } = payment.payload.authorization;
  const option =
    candidates.find((o) => o.amount === value && sameAddress(o.payTo, to)) ??
    candidates.find((o) => o.amount === value) ??
    candidates[0];
  return option === undefined ? { kind: 'no_match', reason: GATEWAY_REASON.noMatchingRequirements } : { kind: 'ok', option };
}

/** Finds the option `payment` pays, among the route's options for this request. */
export function selectRequirement(payment: DecodedPayment, options: readonly PaymentOption[]): SelectOutcome {
  switch (payment.x402Version) {
    case 1:
      return selectV1(payment, options);
    case 2:
      // The decoder always sets `accepted` on v2; its absence is a no-match, never a pass.
      return payment.accepted === undefined
        ? { kind: 'no_match', reason: GATEWAY_REASON.noMatchingRequirements }
        : selectV2(payment.accepted, options);
  }
}
