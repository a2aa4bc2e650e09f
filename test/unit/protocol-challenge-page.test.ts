import { describe, expect, it } from 'vitest';
import { escapeHtml, renderChallengePage } from '../../src/protocol/challenge-page.js';
import { makeOption, makeRoute, PAY_TO, USDC_ARBITRUM } from '../helpers/options.js';

describe('renderChallengePage', () => {
  const options = [makeOption(), makeOption({ asset: USDC_ARBITRUM, amount: 1_500_000n })];

  it('shows description, prices, networks and payee', () => {
    const html = renderChallengePage({ route: makeRoute(options), resourceUrl: 'https://gw.example.com/v1/weather', options });
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('Current weather');
    expect(html).toContain('0.01 USDC');
    expect(html).toContain('1.5 USDC');
    expect(html).toContain('base (eip155:8453)');
    expect(html).toContain('eip155:42161');
    expect(html).toContain(PAY_TO);
    expect(html).toContain('x402');
  });

  it('escapes every interpolated string', () => {
    const route = makeRoute(options, { description: '<script>alert("x")</script>' });
    const html = renderChallengePage({ route, resourceUrl: 'https://gw.example.com/?q="><img src=x onerror=alert(1)>', options });
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
  });

  it('escapes symbols from config too', () => {
    const odd = makeOption({ asset: { ...USDC_ARBITRUM, symbol: '<b>' } });
    expect(renderChallengePage({ route: makeRoute([odd]), resourceUrl: 'https://x/', options: [odd] })).toContain('&lt;b&gt;');
  });
});

describe('escapeHtml', () => {
  it('escapes the five special characters', () => {
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
    expect(escapeHtml('plain é')).toBe('plain é');
  });
});
