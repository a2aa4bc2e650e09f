/**
 * `GET /.well-known/x402`: the priced routes, generated from the live route table, so what is
 * advertised can never drift from what is enforced. Shaped like the x402 bazaar discovery
 * listing (`items` of `{ resource, type, x402Version, accepts, metadata }`). Pure.
 */
import type { RouteConfig } from '../config/types.js';
import type { WireRequirementV2 } from './types.js';

export interface DiscoveryItem {
  /** The route's pattern under the gateway's base URL, e.g. `https://api.example.com/v1/jobs/:id`. */
  readonly resource: string;
  readonly type: 'http';
  readonly x402Version: 2;
  readonly accepts: readonly WireRequirementV2[];
  readonly metadata: {
    readonly method: string;
    readonly description: string;
    readonly mimeType: string;
    readonly settlement: RouteConfig['settlement'];
    readonly mode: RouteConfig['mode'];
  };
}

export interface DiscoveryDocument {
  readonly x402Version: 2;
  readonly items: readonly DiscoveryItem[];
  /** The active config's hash: which table this listing was generated from. */
  readonly config: string;
}

/** Builds the listing for `baseUrl` (no trailing slash). */
export function buildDiscovery(routes: readonly RouteConfig[], baseUrl: string, configHash: string): DiscoveryDocument {
  const items: DiscoveryItem[] = [];
  for (const route of routes) {
    if (route.price.kind !== 'priced') continue;
    const [method = '*', path = '/'] = route.match.trim().split(/\s+/);
    items.push({
      resource: baseUrl + path,
      type: 'http',
      x402Version: 2,
      accepts: route.price.options.map((o) => o.wire.v2),
      metadata: { method: method.toUpperCase(), description: route.description, mimeType: route.mimeType, settlement: route.settlement, mode: route.mode },
    });
  }
  return { x402Version: 2, items, config: configHash };
}
