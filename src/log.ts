/**
 * pino options. Payment headers are bearer instruments until settled and upstream credentials are
 * secrets: both are redacted wherever a request or its headers are logged.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

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
    base: { service: 'x402-gateway' },
  };
}

/**
 * The production logger: JSON lines to stdout through a buffered, asynchronous destination, so a
 * request's log line costs no write syscall of its own. The price: on a hard crash the last few
 * KiB of lines may be lost, never a receipt (the ledger is written synchronously). `flush()` runs
 * on shutdown.
 */
export function createLogger(level: string): Logger {
  return pino(loggerOptions(level), pino.destination({ dest: 1, sync: false, minLength: 4096 }));
}
