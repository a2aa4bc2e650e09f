/**
 * The start-up check of facilitator mode: ask every configured facilitator `GET /supported` and
 * report which of the kinds the gateway will send it are missing. Reported, not enforced: a
 * facilitator may be down at start-up and fine a minute later, and fallback covers the gap.
 *
 * Except a refused key: a facilitator that answers 401/403 is up and turning the gateway away,
 * which no minute fixes; every paid request would fail. `credentialRefusals` names them, and the
 * process root refuses to start with a key that is refused (server.ts).
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
  | {
      readonly url: string;
      readonly reachable: false;
      readonly message: string;
      /** It answered 401/403: it refused the gateway's credentials (or wants some). */
      readonly authRefused: boolean;
      /** The CDP key id it refused, when the gateway signed with one. */
      readonly keyId?: string;
    };

/** Queries all facilitators concurrently; never throws. */
export function checkFacilitatorSupport(
  clients: readonly FacilitatorClient[],
  expected: readonly FacilitatorKind[],
): Promise<FacilitatorSupportReport[]> {
  return Promise.all(
    clients.map(async (client): Promise<FacilitatorSupportReport> => {
      const outcome = await client.supported();
      if (outcome.kind === 'unavailable') {
        const { message, kind, keyId } = outcome.failure;
        return { url: client.displayUrl, reachable: false, message, authRefused: kind === 'auth_refused', ...(keyId === undefined ? {} : { keyId }) };
      }
      const { kinds } = outcome.answer;
      const missing = expected.filter(
        (want) => !kinds.some((k) => k.x402Version === want.x402Version && k.scheme === want.scheme && k.network === want.network),
      );
      return { url: client.displayUrl, reachable: true, missing, kinds };
    }),
  );
}

/**
 * One line per facilitator that refused a CDP key, naming the network, the facilitator's origin
 * and the key id (never the secret); empty when none did.
 */
export function credentialRefusals(checks: readonly { readonly network: string; readonly reports: readonly FacilitatorSupportReport[] }[]): string[] {
  return checks.flatMap(({ network, reports }) =>
    reports.flatMap((r) =>
      !r.reachable && r.authRefused && r.keyId !== undefined
        ? [`network "${network}": the facilitator at ${r.url} refused CDP API key "${r.keyId}" (check CDP_API_KEY_ID / CDP_API_KEY_SECRET, and that the key is enabled)`]
        : [],
    ),
  );
}
