/** YAML paths in config problems, shared by the schema check, the compile and `${VAR}` expansion. */

/** Formats a path like ['routes', 2, 'price'] as `routes[2].price`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}
