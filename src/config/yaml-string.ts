/**
 * Quoting for config files the gateway writes itself (`demo`, `init`), so that any text — an
 * OpenAPI summary with `: ` or `#`, a URL, a price — reads back as exactly that string. Pure.
 */

/**
 * A double-quoted YAML scalar. JSON strings are valid YAML double-quoted scalars; `${` is escaped
 * as `$${` because the config loader expands `${VAR}` in every string. JSON leaves DEL and the C1
 * controls raw, which YAML does not allow in a document, so they are escaped as `\uXXXX` too.
 */
export function yamlString(value: string): string {
  // A function replacement: in a replacement string, `$$` would itself mean a single `$`.
  return JSON.stringify(value.replaceAll('${', () => '$${')).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text for one `#` comment line: line breaks and other controls become spaces, so it cannot end the comment. */
export function yamlCommentText(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
}
