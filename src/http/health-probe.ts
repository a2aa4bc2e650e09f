/**
 * The client side of the admin listener's /healthz, for `x402-gateway healthcheck` (a container
 * runtime's HEALTHCHECK runs a command; Kubernetes probes the endpoint itself). Plain node:http:
 * one GET, bounded in time, every failure an answer rather than an exception.
 */
import { get } from 'node:http';
import { isIPv6 } from 'node:net';

/** The path the admin app serves liveness on (http/admin.ts). */
export const HEALTH_PATH = '/healthz';

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** `http://host:port/healthz`, for the line that reports the outcome. */
  readonly label: string;
}

export type ProbeAnswer = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Where to connect for a listener bound to `host`: a wildcard address (every interface) is
 * reached on loopback, which it includes; any other address or name as written.
 */
export function probeTarget(host: string, port: number): ProbeTarget {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const connect = bare === '0.0.0.0' || bare === '::' || bare === '' ? '127.0.0.1' : bare;
  return { host: connect, port, label: `http://${isIPv6(connect) ? `[${connect}]` : connect}:${port}${HEALTH_PATH}` };
}

/** Longest part of the body read: the gateway's answer is `{"status":"ok"}`. */
const MAX_BODY_CHARS = 4_096;

/**
 * GET /healthz within `timeoutMs` (connect and answer together). Ok only for a 200 whose body
 * says `"status":"ok"`: another program's 200 on that port is no answer from the gateway.
 */
export function probeHealth(target: ProbeTarget, timeoutMs: number): Promise<ProbeAnswer> {
  return new Promise((resolve) => {
    const request = get({ host: target.host, port: target.port, path: HEALTH_PATH, signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < MAX_BODY_CHARS) body += chunk;
      });
      response.on('end', () => {
        if (response.statusCode !== 200) resolve({ ok: false, reason: `answered ${response.statusCode ?? 'without a status'}` });
        else if (!/"status"\s*:\s*"ok"/.test(body)) resolve({ ok: false, reason: 'answered 200, but not as the gateway does ({"status":"ok"})' });
        else resolve({ ok: true });
      });
      response.on('error', (err) => resolve({ ok: false, reason: failure(err, timeoutMs) }));
    });
    request.on('error', (err) => resolve({ ok: false, reason: failure(err, timeoutMs) }));
  });
}

function failure(err: Error, timeoutMs: number): string {
  const code = 'code' in err ? err.code : undefined;
  if (err.name === 'AbortError' || err.name === 'TimeoutError' || code === 'ABORT_ERR') return `no answer within ${timeoutMs} ms`;
  if (code === 'ECONNREFUSED') return 'connection refused (is the gateway running, with this config?)';
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}
