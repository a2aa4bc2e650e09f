/**
 * One section of the config, checked alone, for the commands that read nothing else: `receipts`
 * and `ledger migrate` read the ledger, `healthcheck` the admin listener's address. They run where
 * the secrets of settlement are not given (a shell next to the volume, a container's health
 * probe), so they must not need the rest of the file to be complete or even valid; `start` and
 * `validate` check the whole file (parse.ts). The section's rules are the schema's own (schema.ts),
 * so the two cannot drift. Pure: the caller (load.ts) reads the file and expands `${VAR}` in the
 * section only.
 */
import type { z } from 'zod';
import { formatPath } from './format-path.js';
import { durationMs } from './parse.js';
import { configSchema } from './schema.js';
import type { LedgerConfig, ListenConfig } from './types.js';

export type SectionResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problems: readonly string[] };

/** A top-level key of the file, the part of it that is read, and its check. */
export interface ConfigSection<T> {
  readonly key: string;
  /** The keys of the section that are read (and whose `${VAR}` must be set); all when absent. */
  readonly only?: readonly string[];
  /** Checks the section's data (cut to `only`, expanded); problems carry their full YAML path. */
  parse(data: unknown): SectionResult<T>;
}

/** `ledger`, as `receipts` and `ledger migrate` open it: `${DATABASE_URL}` is still needed for PostgreSQL. */
export const LEDGER_SECTION: ConfigSection<LedgerConfig> = {
  key: 'ledger',
  parse(data) {
    const parsed = configSchema.shape.ledger.safeParse(data);
    if (!parsed.success) return { ok: false, problems: sectionProblems('ledger', parsed.error) };
    // As parse.ts compiles it: the retention in milliseconds.
    const { retention, ...store } = parsed.data;
    return { ok: true, value: { ...store, retentionMs: durationMs(retention) } };
  },
};

const adminAddress = configSchema.shape.admin.unwrap().pick({ host: true, port: true });

/** `admin.host` and `admin.port`, for `healthcheck`: /healthz needs no token, so none is read or required. */
export const ADMIN_ADDRESS_SECTION: ConfigSection<ListenConfig> = {
  key: 'admin',
  only: ['host', 'port'],
  parse(data) {
    const parsed = adminAddress.safeParse(data ?? {});
    if (!parsed.success) return { ok: false, problems: sectionProblems('admin', parsed.error) };
    return { ok: true, value: { host: parsed.data.host, port: parsed.data.port } };
  },
};

/** Zod's issues as parse.ts words them, under the section's key. */
function sectionProblems(key: string, error: z.ZodError): string[] {
  return error.issues.map((issue) =>
    issue.code === 'unrecognized_keys'
      ? `${formatPath([key, ...issue.path])}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
      : `${formatPath([key, ...issue.path])}: ${issue.message}`,
  );
}
