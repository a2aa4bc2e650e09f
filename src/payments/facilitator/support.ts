/**
 * The start-up check of facilitator mode: ask every configured facilitator `GET /supported` and
 * report which of the kinds the gateway will send it are missing. Reported, not enforced: a
 * facilitator may be down at start-up and fine a minute later, and fallback covers the gap.
 */
import type { FacilitatorKind } from './answers.js';
import type { FacilitatorClient } from './client.js';

export type FacilitatorSupportReport =
  | {
      readonly url: string;
      readonly reachable: true;
      /** Expected kinds the facilitator does not list; empty when all are there. */
      readonly missing: readonly FacilitatorKind[];
      readonly kinds: readonly FacilitatorKind[];
    }
  | { readonly url: string; readonly reachable: false; readonly message: string };

/** Queries all facilitators concurrently; never throws. */
export function checkFacilitatorSupport(
  clients: readonly FacilitatorClient[],
  expected: readonly FacilitatorKind[],
): Promise<FacilitatorSupportReport[]> {
  return Promise.all(
    clients.map(async (client): Promise<FacilitatorSupportReport> => {
      const outcome = await client.supported();
      if (outcome.kind === 'unavailable') return { url: client.displayUrl, reachable: false, message: outcome.failure.message };
      const { kinds } = outcome.answer;
      const missing = expected.filter(
        (want) => !kinds.some((k) => k.x402Version === want.x402Version && k.scheme === want.scheme && k.network === want.network),
      );
      return { url: client.displayUrl, reachable: true, missing, kinds };
    }),
  );
}
