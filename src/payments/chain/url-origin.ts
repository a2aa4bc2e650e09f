/**
 * What the gateway may say of a configured URL. RPC and facilitator URLs carry their provider's
 * API key in the path (`/v2/KEY`), the query (`?apiKey=`) or the userinfo, so messages, logs and
 * answers name an endpoint by its origin alone: scheme, host and port.
 */

/**
 * `scheme://host[:port]` of `url`; `<invalid URL>` when it does not parse (config checks that it
 * does). Built from the parts rather than `URL.origin`, which is `null` for schemes such as
 * `postgres:` whose URLs carry passwords just the same.
 */
export function urlOrigin(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return '<invalid URL>';
  }
}

/**
 * Anything that looks like a URL (`scheme://...` up to a space, a quote or a bracket), except a
 * `file://` one: stack frames name source files that way, and they hold no credentials.
 */
const URL_IN_TEXT = /\b(?!file:)[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>()[\]{}]+/gi;

/** `text` with every URL in it cut to its origin: for third-party and library text that may quote one. */
export function originsOnly(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => urlOrigin(url));
}
