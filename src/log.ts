/**
 * pino options. Payment headers are bearer instruments until settled and upstream credentials are
 * secrets: both are redacted wherever a request or its headers are logged. Errors are written
 * by `serializeError`, which never lets a network error's own text through.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { errorText, isNetworkError } from './payments/chain/describe-fault.js';
import { clip, errorChain } from './payments/chain/rpc-errors.js';
import { originsOnly } from './payments/chain/url-origin.js';

export const REDACTED_PATHS: readonly string[] = [
  'req.headers["payment-signature"]',
  'req.headers["x-payment"]',
  'req.headers["x-payment-proof"]',
  // With the hash, the pass to one resource until the hash is spent.
  'req.headers["x-payment-proof-signature"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers["payment-signature"]',
  'headers["x-payment"]',
  'headers["x-payment-proof-signature"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'privateKey',
  '*.privateKey',
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    serializers: { err: serializeError },
    base: { service: 'x402-gateway' },
  };
}

/**
 * Properties of an error never copied into a line: viem's carry the endpoint's URL (with its API
 * key in the path or query), the request body and the node's answer; the rest are written apart.
 */
const UNLOGGED_ERROR_FIELDS: ReadonlySet<string> = new Set(['message', 'stack', 'name', 'cause', 'url', 'details', 'shortMessage', 'metaMessages', 'body', 'headers', 'data', 'docsPath']);
/** Longest string property of an error written. */
const MAX_ERROR_FIELD_LENGTH = 300;

/**
 * The `err` serializer, belt and braces under the rule that our own messages say faults in our
 * words (describe-fault.ts). pino's standard one appends every cause's message and stack and
 * copies every property: a viem error's message prints the RPC URL, key and all, and the node's
 * or a proxy's answer (error pages echo the request target). Here:
 *
 *   - `message`: a network error's is said in our words, any other's is kept with every URL in
 *     it cut to its origin;
 *   - `causes`: the chain below (`cause`, `AggregateError.errors`) by type, code and status, with
 *     the message only of causes that are no network error;
 *   - `stack`: the frames only (the message is not repeated there);
 *   - number, boolean and string properties (`code`, `statusCode`, ...), strings cut to origins,
 *     except the ones above.
 *
 * A string under `err` (a failure already said in words) is kept, URLs cut to origins.
 */
export function serializeError(value: unknown): unknown {
  if (typeof value === 'string') return originsOnly(value);
  if (!(value instanceof Error)) return value;
  const out: Record<string, unknown> = { type: typeOf(value), message: errorText(value) };
  for (const [key, field] of Object.entries(value)) {
    if (UNLOGGED_ERROR_FIELDS.has(key)) continue;
    if (typeof field === 'number' || typeof field === 'boolean') out[key] = field;
    else if (typeof field === 'string') out[key] = clip(originsOnly(field), MAX_ERROR_FIELD_LENGTH);
  }
  const causes = errorChain(value).slice(1).map(summariseCause);
  if (causes.length > 0) out['causes'] = causes;
  const frames = (value.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
  if (frames.length > 0) out['stack'] = originsOnly(frames.join('\n'));
  return out;
}

function typeOf(err: Error): string {
  return err.constructor.name === '' ? err.name : err.constructor.name;
}

function summariseCause(cause: unknown): Record<string, unknown> {
  if (typeof cause !== 'object' || cause === null) return { type: typeof cause };
  const summary: Record<string, unknown> = { type: cause instanceof Error ? typeOf(cause) : 'object' };
  if ('code' in cause && (typeof cause.code === 'string' || typeof cause.code === 'number')) summary['code'] = cause.code;
  if ('status' in cause && typeof cause.status === 'number') summary['status'] = cause.status;
  // A plain object in a chain is a JSON-RPC error answer (viem's RpcRequestError cause): the node's words.
  if (cause instanceof Error && !isNetworkError(cause)) summary['message'] = clip(originsOnly(cause.message), MAX_ERROR_FIELD_LENGTH);
  return summary;
}

/**
 * The production logger: JSON lines to stdout, each written with its own synchronous write(2).
 *
 * Why synchronous: under a container runtime stdout is the only log, and an operator reads it
 * while the process runs (`docker logs`, `kubectl logs`) and after it died. A buffered destination
 * held lines back until 4 KiB had built up, so a quiet gateway showed nothing, start-up warnings
 * included. An asynchronous one without a minimum still keeps lines in memory while a write is
 * in flight; pino writes them out on the `exit` event (an exit call, an uncaught exception), but
 * nothing runs when the process is killed (the runtime's SIGKILL after the stop timeout, the OOM
 * killer) or V8 aborts, and those are the deaths whose last lines matter most (it lost request
 * lines to a SIGKILL in test/integration/log-delivery.test.ts). A line written synchronously is in
 * the kernel's pipe when the call returns, whatever happens next.
 *
 * The price: about 2.5 µs more per line than the asynchronous destination (a loop of summary-sized
 * lines into a pipe), one line per request, small beside a request's own work. If the reader of
 * the pipe stalls, writes wait for it (pino retries EAGAIN) rather than pile up in memory.
 */
export function createLogger(level: string): Logger {
  return pino(loggerOptions(level), pino.destination({ dest: 1, sync: true }));
}
