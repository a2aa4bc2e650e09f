/**
 * Faults in our words: an RPC or facilitator URL carries its provider's API key in the path,
 * query or userinfo, and viem's and undici's messages (and the error pages they quote) print it.
 */
import { HttpRequestError, InternalRpcError, RpcRequestError, TimeoutError } from 'viem';
import { describe, expect, it } from 'vitest';
import { InfrastructureError } from '../../src/errors.js';
import { describeFault, errorText, isNetworkError } from '../../src/payments/chain/describe-fault.js';
import { originsOnly, urlOrigin } from '../../src/payments/chain/url-origin.js';

const KEY = 'k3y5ecret';
const URL_WITH_KEY = `https://user:pa55@base-mainnet.g.alchemy.com/v2/${KEY}?apiKey=${KEY}`;
const ORIGIN = 'https://base-mainnet.g.alchemy.com';
const BODY = { jsonrpc: '2.0', id: 1, method: 'eth_call', params: [] };

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.1:443`), { code });
}

describe('urlOrigin and originsOnly', () => {
  it('keep scheme, host and port; never userinfo, path or query', () => {
    expect(urlOrigin(URL_WITH_KEY)).toBe(ORIGIN);
    expect(urlOrigin(`https://${KEY}.quiknode.pro:8443/${KEY}/`)).toBe(`https://${KEY}.quiknode.pro:8443`);
    expect(urlOrigin('postgres://gw:pa55@db:5432/gateway')).toBe('postgres://db:5432');
    expect(urlOrigin('not a url')).toBe('<invalid URL>');
  });

  it('cut every URL in a text to its origin, and leave file URLs and plain paths alone', () => {
    const text = `HTTP request failed.\nURL: ${URL_WITH_KEY}\n    at f (file:///work/src/x.ts:1:2) and (${URL_WITH_KEY})`;
    expect(originsOnly(text)).toBe(`HTTP request failed.\nURL: ${ORIGIN}\n    at f (file:///work/src/x.ts:1:2) and (${ORIGIN})`);
  });
});

describe('describeFault', () => {
  it.each([
    ['a timeout', new TimeoutError({ body: BODY, url: URL_WITH_KEY }), `timed out (${ORIGIN})`],
    ['an HTTP status', new HttpRequestError({ body: BODY, url: URL_WITH_KEY, status: 500, details: `Cannot POST /v2/${KEY}` }), `answered HTTP 500 (${ORIGIN})`],
    ['an answer that is not JSON-RPC', new HttpRequestError({ body: BODY, url: URL_WITH_KEY, status: 200, details: 'not JSON' }), `the answer is not JSON-RPC (${ORIGIN})`],
    ['a refused connection', new HttpRequestError({ body: BODY, url: URL_WITH_KEY, cause: socketError('ECONNREFUSED') }), `connection refused (ECONNREFUSED) (${ORIGIN})`],
    ['an unknown socket code', new HttpRequestError({ body: BODY, url: URL_WITH_KEY, cause: socketError('ESOMETHING') }), `connection failed (ESOMETHING) (${ORIGIN})`],
    [
      'a JSON-RPC refusal, by kind',
      new RpcRequestError({ body: BODY, url: URL_WITH_KEY, error: { code: -32000, message: `nonce too low for key ${KEY}` } }),
      `refused by the node: JSON-RPC error -32000, nonce conflict (${ORIGIN})`,
    ],
    [
      'a JSON-RPC refusal of no known kind, through viem\'s mapping',
      new InternalRpcError(new RpcRequestError({ body: BODY, url: URL_WITH_KEY, error: { code: -32603, message: `project ${KEY} is not allowed` } })),
      `refused by the node: JSON-RPC error -32603 (${ORIGIN})`,
    ],
    ['an undici error on its own', socketError('UND_ERR_CONNECT_TIMEOUT'), 'connect timed out (UND_ERR_CONNECT_TIMEOUT)'],
    ['an error that is no network fault', new Error(`the store is read-only (see ${URL_WITH_KEY})`), `Error: the store is read-only (see ${ORIGIN})`],
  ])('says %s in our words', (_what, err, words) => {
    expect(describeFault(err)).toBe(words);
    expect(describeFault(err)).not.toContain(KEY);
    expect(describeFault(err)).not.toContain('pa55');
  });

  it('reads a store\'s SQLSTATE as no socket code', () => {
    expect(describeFault(Object.assign(new Error('relation "receipts" does not exist'), { code: '42P01' }))).toBe('Error: relation "receipts" does not exist');
  });
});

describe('errorText', () => {
  it('keeps our own messages, says network errors and libraries\' wrappers of them in our words', () => {
    const cause = new HttpRequestError({ body: BODY, url: URL_WITH_KEY, status: 502 });
    expect(errorText(new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', 'chain 8453: eth_call failed: answered HTTP 502', { cause }))).toBe('chain 8453: eth_call failed: answered HTTP 502');
    expect(errorText(cause)).toBe(`answered HTTP 502 (${ORIGIN})`);
    // @fastify/reply-from repeats undici's message in its own error.
    const wrapper = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443', { cause: socketError('ECONNREFUSED') }), { code: 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR' });
    expect(isNetworkError(wrapper)).toBe(false);
    expect(errorText(wrapper)).toBe('connection refused (ECONNREFUSED)');
    expect(errorText('plain')).toBe('plain');
  });
});
