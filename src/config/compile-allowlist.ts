/** An `allow` block compiled: API key hashes to a set, CIDRs to a BlockList. */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { formatPath } from './format-path.js';
import type { RawConfig } from './schema.js';
import type { Allowlist } from './types.js';

/** API key hashes and CIDRs (checked with node's BlockList, which parses and matches them). */
export function compileAllowlist(raw: NonNullable<RawConfig['defaults']['allow']>, path: (string | number)[], problems: string[]): Allowlist {
  const cidrs = new BlockList();
  raw.cidrs.forEach((text, i) => {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
    const address = m?.[1] ?? '';
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const prefix = m?.[2] === undefined ? (type === 'ipv6' ? 128 : 32) : Number(m[2]);
    if (!type || prefix > (type === 'ipv6' ? 128 : 32)) {
      problems.push(`${formatPath([...path, 'cidrs', i])}: "${text}" is not an IP address or CIDR block`);
      return;
    }
    cidrs.addSubnet(address, prefix, type);
  });
  return {
    apiKeySha256: new Set(raw.apiKeySha256.map((h) => h.toLowerCase())),
    apiKeyHeader: raw.apiKeyHeader.toLowerCase(),
    cidrs,
    cidrList: raw.cidrs,
  };
}
