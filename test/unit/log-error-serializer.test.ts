/**
 * The `err` serializer of the gateway's logger: whatever error reaches a log line, no RPC URL's
 * path, query or userinfo, and no quoted answer body, is written (pino's standard serializer
 * writes every cause's message and every property, viem's `url`, `details` and `metaMessages`).
 */
import { HttpRequestError, InternalRpcError, RpcRequestError } from 'viem';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { InfrastructureError } from '../../src/errors.js';
import { loggerOptions, serializeError } from '../../src/log.js';

const KEY = 'k3y5ecret';
const URL_WITH_KEY = `https://user:pa55@base-mainnet.g.alchemy.com/v2/${KEY}?apiKey=${KEY}`;
const ORIGIN = 'https://base-mainnet.g.alchemy.com';

function logged(fields: Record<string, unknown>): string {
  const out: string[] = [];
  pino(loggerOptions('trace'), { write: (line: string) => void out.push(line) }).error(fields, 'fault');
  return out.join('');
}

it('writes a chain fault in our words: the origin, types and codes, no key, no body', () => {
  const socket = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' });
  const http = new HttpRequestError({ body: { method: 'eth_call' }, url: URL_WITH_KEY, status: 500, details: `<pre>Cannot POST /v2/${KEY}</pre>`, cause: socket });
  const err = new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', 'chain 8453: eth_call failed', { cause: http });
  const line = logged({ err });
  expect(line).not.toContain(KEY);
  expect(line).not.toContain('pa55');
  expect(line).not.toContain('Cannot POST');
  const written = (JSON.parse(line) as { err: Record<string, unknown> }).err;
  expect(written).toMatchObject({
    type: 'InfrastructureError',
    message: 'chain 8453: eth_call failed',
    code: 'GW_ERR_CHAIN_UNAVAILABLE',
    causes: [{ type: 'HttpRequestError', status: 500 }, { type: 'Error', code: 'ECONNREFUSED' }],
  });
  expect(String(written['stack'])).toMatch(/^\s+at /);
});

it('writes a bare viem error (a reconciler\'s, a balance reader\'s) in our words, none of its fields', () => {
  const err = new InternalRpcError(new RpcRequestError({ body: { method: 'eth_sendRawTransaction' }, url: URL_WITH_KEY, error: { code: -32603, message: `key ${KEY} throttled` } }));
  const line = logged({ err });
  expect(line).not.toContain(KEY);
  expect(JSON.parse(line)).toMatchObject({ err: { type: 'InternalRpcError', message: `refused by the node: JSON-RPC error -32603 (${ORIGIN})`, code: -32603 } });
});

it('keeps other errors\' messages and their causes\' (URLs cut), and a string as it is said', () => {
  const err = new Error(`ledger write failed at ${URL_WITH_KEY}`, { cause: new Error('disk full') });
  expect(serializeError(err)).toMatchObject({ type: 'Error', message: `ledger write failed at ${ORIGIN}`, causes: [{ type: 'Error', message: 'disk full' }] });
  expect(serializeError(`GET /supported to ${URL_WITH_KEY} failed`)).toBe(`GET /supported to ${ORIGIN} failed`);
  expect(serializeError({ not: 'an error' })).toEqual({ not: 'an error' });
});
