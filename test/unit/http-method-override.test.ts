import { describe, expect, it } from 'vitest';
import { formKind, formOverridesMethod, overrideCouldReachPricedRoute, queryOverridesMethod } from '../../src/http/method-override.js';
import { parseTestConfig, UNREACHABLE_FACILITATOR_BASE, gatewayYamlHead } from '../helpers/gateway.js';

const config = parseTestConfig(`${gatewayYamlHead({ payTo: '0x1111111111111111111111111111111111111111', network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "http://127.0.0.1:8080" }
routes:
  - { match: "GET /report", price: "$0.01" }
  - { match: "POST /report", price: free }
  - { match: "POST /upload", price: free }
  - { match: "* /jobs", price: "$0.01" }
`);

describe('method overrides', () => {
  it.each([
    ['?_method=GET', true],
    ['?x=1&_Method=put', true],
    ['?%5Fmethod=GET', true],
    ['?method=GET', false],
    ['?_method_x=1', false],
    ['', false],
  ])('query %s overrides: %s', (search, expected) => {
    expect(queryOverridesMethod(search)).toBe(expected);
  });

  it('reads forms only for a POST with a form content type', () => {
    expect(formKind('POST', 'application/x-www-form-urlencoded; charset=utf-8')).toBe('urlencoded');
    expect(formKind('POST', 'Multipart/Form-Data; boundary=x')).toBe('multipart');
    expect(formKind('PUT', 'application/x-www-form-urlencoded')).toBeUndefined();
    expect(formKind('POST', 'application/json')).toBeUndefined();
    expect(formKind('POST', undefined)).toBeUndefined();
  });

  it('matters only where another method meets another, priced route', () => {
    expect(overrideCouldReachPricedRoute(config.table, 'POST', undefined, ['report'])).toBe(true);
    expect(overrideCouldReachPricedRoute(config.table, 'POST', undefined, ['upload'])).toBe(false);
    expect(overrideCouldReachPricedRoute(config.table, 'POST', undefined, ['jobs'])).toBe(false);
  });

  it('finds _method fields in urlencoded and multipart bodies, and nothing else', () => {
    expect(formOverridesMethod('urlencoded', Buffer.from('a=1&_method=GET'))).toBe(true);
    expect(formOverridesMethod('urlencoded', Buffer.from('a=_method&b=2'))).toBe(false);
    expect(formOverridesMethod('multipart', Buffer.from('--x\r\nContent-Disposition: form-data; name=_method\r\n\r\nGET\r\n--x--'))).toBe(true);
    expect(formOverridesMethod('multipart', Buffer.from('--x\r\nContent-Disposition: form-data; name="file"; filename="_method"\r\n\r\nGET\r\n--x--'))).toBe(false);
  });
});
