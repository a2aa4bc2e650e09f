/**
 * The config file's JSON Schema, generated from the zod schema (schema.ts), for editors: the YAML
 * language server reads `config/gateway.schema.json` (named on the first line of a config) and
 * offers completion and checks as the operator types. Committed, and a test fails when it drifts
 * from what this produces (`npm run config:schema` writes it).
 *
 * One change to zod's output: a string the loader expands from the environment (`${SETTLER_KEY}`,
 * `${RPC:-http://...}`, load.ts) is only checked once expanded, so every string field with a
 * pattern or a format also accepts a string holding such a reference.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

/** A string holding at least one environment reference, as load.ts expands them. */
export const ENV_REFERENCE_PATTERN = '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function configJsonSchema(): Record<string, Json> {
  const generated = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, Json>;
  return {
    ...allowEnvReferences(generated),
    $id: 'https://x402-gateway.dev/config/gateway.schema.json',
    title: 'x402-gateway config',
    description: 'The config file of x402-gateway (gateway.yaml). Strings may name environment variables as ${NAME} or ${NAME:-default}.',
  } as Record<string, Json>;
}

function allowEnvReferences<T extends Json>(node: T): T {
  if (Array.isArray(node)) return node.map(allowEnvReferences) as T;
  if (node === null || typeof node !== 'object') return node;
  const walked = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, allowEnvReferences(value)]));
  // Any constraint the loader checks only after expansion: a reference satisfies it then, not as written.
  const constrained = walked['type'] === 'string' && ['pattern', 'format', 'minLength', 'maxLength', 'enum'].some((keyword) => walked[keyword] !== undefined);
  return (constrained ? { anyOf: [walked, { type: 'string', pattern: ENV_REFERENCE_PATTERN }] } : walked) as T;
}
