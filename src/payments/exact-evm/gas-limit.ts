/**
 * The gas limit of a settlement transaction. Pure.
 *
 * The estimate is a simulation, and a payer with code decides what its simulation costs (its
 * ERC-1271 `isValidSignature` may burn millions of gas) and may behave differently once mined
 * (a wallet that tells the two apart by the gas price). So the estimate alone must not set the
 * limit: an estimate over the cap is refused before anything is sent, and the limit given to the
 * transaction never exceeds the cap, so even a mined revert burns at most the cap.
 */

/** Headroom over the estimate: state may change between estimate and inclusion. Unused gas is refunded. */
export const GAS_HEADROOM_PERCENT = 25n;

export type GasLimit =
  | { readonly kind: 'limit'; readonly gas: bigint }
  | { readonly kind: 'over_cap'; readonly estimate: bigint; readonly maxGas: bigint };

/** The estimate plus GAS_HEADROOM_PERCENT, at most `maxGas`; `over_cap` when the estimate alone exceeds it. */
export function settlementGasLimit(estimate: bigint, maxGas: bigint): GasLimit {
  if (estimate > maxGas) return { kind: 'over_cap', estimate, maxGas };
  const padded = estimate + (estimate * GAS_HEADROOM_PERCENT) / 100n;
  return { kind: 'limit', gas: padded < maxGas ? padded : maxGas };
}

/** The refusal's detail, for logs and receipt rows. */
export function overCapMessage(limit: { readonly estimate: bigint; readonly maxGas: bigint }): string {
  return `the settlement would need ${limit.estimate} gas, over settle.maxGas (${limit.maxGas})`;
}
