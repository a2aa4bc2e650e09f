/**
 * pino options. Payment headers are bearer instruments until settled and upstream credentials are
 * secrets: both are redacted wherever a request or its headers are logged.
 */
import type { LoggerOptions } from 'pino';

export const REDACTED_PATHS: readonly string[] = [
  'req.headers["payment-signature"]',
  'req.headers["x-payment"]',
  'req.headers["x-payment-proof"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers["payment-signature"]',
  'headers["x-payment"]',
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
