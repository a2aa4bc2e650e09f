/**
 * The config file edge: the only reader of the file and the only user of the YAML parser.
 * Text -> YAML document -> `${VAR}` expansion -> `parseConfig`; or, for a command that reads one
 * section, that section alone -> its `${VAR}` -> its check (parse-section.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { formatPath } from './format-path.js';
import { parseConfig, type ParseResult } from './parse.js';
import type { ConfigSection, SectionResult } from './parse-section.js';

/** `${NAME}` or `${NAME:-default}`; `$${` escapes a literal `${`. */
const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` in every string value; an unset variable without a default is a problem. */
export function expandEnv(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
  path: PropertyKey[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (whole, name: string | undefined, fallback: string | undefined) => {
      if (whole === '$${') return '${';
      const v = env[name ?? ''];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${formatPath(path)}: environment variable ${name ?? ''} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, problems, [...path, k])]));
  }
  return value;
}

/** Parses config text; never throws for bad input. */
export function parseConfigText(text: string, env: Readonly<Record<string, string | undefined>>): ParseResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) return { ok: false, problems: doc.errors.map((e) => `YAML: ${e.message}`) };
  const envProblems: string[] = [];
  const data = expandEnv(doc.toJS({ maxAliasCount: 100 }), env, envProblems);
  const hash = createHash('sha256').update(text).digest('hex');
  const parsed = parseConfig(data, hash);
  // Report unset variables together with everything else that is wrong, not one round at a time.
  if (envProblems.length === 0) return parsed;
  return { ok: false, problems: [...envProblems, ...(parsed.ok ? [] : parsed.problems)] };
}

/** A loaded file: a config, an invalid file, or one that could not be read at all. */
export type LoadResult = ParseResult | { readonly ok: false; readonly unreadable: true; readonly problems: readonly string[] };

/**
 * Reads and parses a config file, at start-up and on every reload. A missing or unreadable file
 * is reported as a problem too, told apart (`unreadable`) from a file that is invalid.
 */
export async function loadConfigFile(path: string, env: Readonly<Record<string, string | undefined>>): Promise<LoadResult> {
  const text = await readConfigText(path);
  return typeof text === 'string' ? parseConfigText(text, env) : text;
}

/**
 * One section of a config file, for the commands that read only it: `${VAR}` is expanded in
 * that section (in its `only` keys) and nowhere else, so an unset secret of another section
 * (`${SETTLER_KEY}`) is no problem, and the rest of the file is not checked.
 */
export async function loadConfigSection<T>(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  section: ConfigSection<T>,
): Promise<SectionResult<T> | { readonly ok: false; readonly unreadable: true; readonly problems: readonly string[] }> {
  const text = await readConfigText(path);
  return typeof text === 'string' ? parseSectionText(text, env, section) : text;
}

/** Parses one section out of config text; never throws for bad input. */
export function parseSectionText<T>(text: string, env: Readonly<Record<string, string | undefined>>, section: ConfigSection<T>): SectionResult<T> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) return { ok: false, problems: doc.errors.map((e) => `YAML: ${e.message}`) };
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { ok: false, problems: ['(top level): the file must be a mapping of sections'] };
  const raw: unknown = Object.entries(data).find(([key]) => key === section.key)?.[1];
  const read = section.only && raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? Object.fromEntries(Object.entries(raw).filter(([key]) => section.only?.includes(key))) : raw;
  const envProblems: string[] = [];
  const expanded = expandEnv(read, env, envProblems, [section.key]);
  const parsed = section.parse(expanded);
  if (envProblems.length === 0) return parsed;
  // Unset variables together with whatever else is wrong in the section, but not what follows
  // from the empty string left in a variable's place (`ledger.url: must be a postgres:// URL`).
  const unset = new Set(envProblems.map(problemPath));
  return { ok: false, problems: [...envProblems, ...(parsed.ok ? [] : parsed.problems.filter((p) => !unset.has(problemPath(p))))] };
}

/** `ledger.url` of `ledger.url: ...`. */
function problemPath(problem: string): string {
  return problem.slice(0, problem.indexOf(': '));
}

/** The file's text, or why it could not be read. */
async function readConfigText(path: string): Promise<string | { readonly ok: false; readonly unreadable: true; readonly problems: readonly string[] }> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, unreadable: true, problems: [`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(err)}`] };
  }
}
