/**
 * A facilitator-settled network's facilitator list (the first, then `fallbacks`), with each
 * `cdp` block checked: the secret must be a key CDP issues (cdp-key.ts), and a configured
 * `Authorization` header would be sent beside the JWT, so it is refused. Problems carry their
 * YAML path and never quote the secret.
 */
import { readCdpSecret } from './cdp-key.js';
import { formatPath } from './format-path.js';
import type { RawConfig } from './schema.js';
import type { FacilitatorConfig } from './types.js';

type RawFacilitatorSettle = Extract<RawConfig['networks'][string]['settle'], { mode: 'facilitator' }>;
type RawFacilitator = RawFacilitatorSettle['fallbacks'][number];

/** `settle` of network `name` as the ordered list of facilitators to ask. */
export function compileFacilitators(name: string, settle: RawFacilitatorSettle, problems: string[]): FacilitatorConfig[] {
  const at = ['networks', name, 'settle'];
  const { url, headers, timeoutMs, cdp } = settle;
  return [
    compileFacilitator({ url, headers, timeoutMs, cdp }, at, problems),
    ...settle.fallbacks.map((f, i) => compileFacilitator(f, [...at, 'fallbacks', i], problems)),
  ];
}

function compileFacilitator(raw: RawFacilitator, at: readonly PropertyKey[], problems: string[]): FacilitatorConfig {
  const base = { url: raw.url, headers: raw.headers, timeoutMs: raw.timeoutMs };
  if (raw.cdp === undefined) return base;
  const read = readCdpSecret(raw.cdp.apiKeySecret);
  if (!read.ok) problems.push(`${formatPath([...at, 'cdp', 'apiKeySecret'])}: ${read.problem}`);
  const authorization = Object.keys(raw.headers).find((h) => h.toLowerCase() === 'authorization');
  if (authorization !== undefined) {
    problems.push(`${formatPath([...at, 'headers', authorization])}: cdp signs every call's Authorization header; remove this one`);
  }
  return { ...base, cdp: { apiKeyId: raw.cdp.apiKeyId, apiKeySecret: raw.cdp.apiKeySecret } };
}
