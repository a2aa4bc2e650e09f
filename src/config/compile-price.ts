/** A route's `price` compiled to its payment options, atomic amounts and wire forms precomputed. */
import { assetHint, checkAssetIds } from './compile-assets.js';
import type { RawConfig } from './schema.js';
import type { Address, AssetConfig, PaymentOption, RoutePrice } from './types.js';
import { dollarsToAtomic, parseAtomic } from '../pricing.js';
import { withWire } from '../protocol/option-wire.js';

/** What a route's price is compiled against: its resolved accepts, payTo and validity. */
export interface PriceContext {
  readonly assets: ReadonlyMap<string, AssetConfig>;
  readonly accepts: readonly string[];
  readonly payTo: Address;
  readonly maxTimeoutSeconds: number;
  readonly problems: string[];
}

/** `free`, a dollar price in each accepted asset, or an atomic amount of one asset; a bad price compiles to free beside its problem. */
export function compilePrice(r: RawConfig['routes'][number], index: number, ctx: PriceContext): RoutePrice {
  const at = `routes[${index}].price`;
  // Each option's wire form (v2 requirement and its JSON, v1 terms, info headers) is built here,
  // once, so no request rebuilds it.
  const option = (asset: AssetConfig, amount: bigint): PaymentOption =>
    withWire({ scheme: 'exact', asset, amount, payTo: ctx.payTo, maxTimeoutSeconds: ctx.maxTimeoutSeconds });
  if (r.price === 'free') return { kind: 'free' };
  if (typeof r.price === 'string') {
    if (r.accepts) checkAssetIds(r.accepts, ctx.assets, ['routes', index, 'accepts'], ctx.problems);
    const options: PaymentOption[] = [];
    for (const id of ctx.accepts) {
      const asset = ctx.assets.get(id);
      if (!asset) continue; // reported by checkAssetIds
      const amount = dollarsToAtomic(r.price, asset.decimals);
      if (!amount.ok) {
        ctx.problems.push(`${at}: ${amount.problem}`);
        return { kind: 'free' };
      }
      options.push(option(asset, amount.amount));
    }
    if (options.length === 0 && ctx.accepts.length === 0) ctx.problems.push(`${at}: no asset to charge in (set defaults.accepts or routes[${index}].accepts)`);
    return { kind: 'priced', options };
  }
  const asset = ctx.assets.get(r.price.asset);
  if (!asset) {
    ctx.problems.push(`${at}.asset: unknown asset "${r.price.asset}"${assetHint(ctx.assets)}`);
    return { kind: 'free' };
  }
  const amount = parseAtomic(r.price.amount);
  if (!amount.ok) {
    ctx.problems.push(`${at}.amount: ${amount.problem}`);
    return { kind: 'free' };
  }
  return { kind: 'priced', options: [option(asset, amount.amount)] };
}
