/**
 * Prices: the operator's "$0.01" or atomic "10000" to an exact bigint amount of an asset.
 * Pure decimal-string arithmetic; a float never touches money.
 */

/** A dollar price: `$`, digits, optional fraction. No sign, exponent, separators or spaces. */
const DOLLAR_PRICE = /^\$(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;
/** A canonical non-negative integer: no sign, no leading zeros, no exponent. */
const CANONICAL_INTEGER = /^(0|[1-9][0-9]*)$/;

export type PriceResult = { readonly ok: true; readonly amount: bigint } | { readonly ok: false; readonly problem: string };

/**
 * Converts a dollar string to atomic units of a USD-pegged asset with `decimals` decimals.
 * "$0.01" at 6 decimals is 10000n. A price with more precision than the asset has is refused,
 * never truncated: "$0.0000001" cannot be charged in USDC.
 */
export function dollarsToAtomic(price: string, decimals: number): PriceResult {
  const m = DOLLAR_PRICE.exec(price);
  if (!m) return { ok: false, problem: `"${price}" is not a dollar price like "$0.01"` };
  const whole = m[1] ?? '0';
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  if (fraction.length > decimals) {
    return { ok: false, problem: `"${price}" is below the asset's smallest unit (${decimals} decimals)` };
  }
  const amount = BigInt(whole + fraction.padEnd(decimals, '0'));
  if (amount === 0n) return { ok: false, problem: `"${price}" is zero; use price: free for a free route` };
  return { ok: true, amount };
}

/** Parses an atomic amount written as a canonical decimal integer string. */
export function parseAtomic(text: string): PriceResult {
  if (!CANONICAL_INTEGER.test(text) || text.length > 78) {
    return { ok: false, problem: `"${text}" is not an atomic amount (a plain integer like "10000")` };
  }
  const amount = BigInt(text);
  if (amount === 0n) return { ok: false, problem: `"${text}" is zero; use price: free for a free route` };
  if (amount >= 2n ** 256n) return { ok: false, problem: `"${text}" does not fit in uint256` };
  return { ok: true, amount };
}

/** Atomic units to a plain decimal string: 10000n at 6 decimals is "0.01". */
export function atomicToDecimal(amount: bigint, decimals: number): string {
  const digits = amount.toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole;
}
