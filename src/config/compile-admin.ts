/**
 * The `admin` section: the listener and its tokens. A listener reachable beyond loopback shows
 * payers and revenue and can reload the config, so it needs `admin.token`, or an explicit
 * `admin.allowUnauthenticated: true` from an operator who keeps the port private some other way
 * (a Kubernetes NetworkPolicy). Pure: the host is judged by its text, never resolved.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { RawConfig } from './schema.js';
import type { AdminConfig } from './types.js';

/** Whether `host` can only be reached from this machine: `localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  // Any other name may resolve to a public address: not loopback.
  return false;
}

export function compileAdmin(raw: RawConfig['admin'], problems: string[]): AdminConfig {
  if (raw.token === undefined && !raw.allowUnauthenticated && !isLoopbackHost(raw.host)) {
    problems.push(
      `admin.token: the admin listener is bound to ${raw.host}, beyond loopback, with no token: anyone who reaches it sees payers and revenue and can reload the config. ` +
        'Set admin.token (e.g. "${ADMIN_TOKEN}", at least 16 characters), or admin.allowUnauthenticated: true if something else (a NetworkPolicy) keeps the port private',
    );
  }
  if (raw.token !== undefined && raw.token === raw.metricsToken) {
    problems.push('admin.metricsToken: must differ from admin.token (a scraper holding it could otherwise use the whole admin port)');
  }
  return {
    host: raw.host,
    port: raw.port,
    token: raw.token,
    metricsToken: raw.metricsToken,
    allowUnauthenticated: raw.allowUnauthenticated,
  };
}
