/**
 * A small HTML page for people who open a priced URL in a browser: what the resource is, what it
 * costs, and how a program pays for it. No script and no wallet integration; the same response
 * still carries the machine-readable `PAYMENT-REQUIRED` header.
 */
import type { PaymentOption } from '../config/types.js';
import { atomicToDecimal } from '../pricing.js';
import type { ChallengeRoute } from './challenge.js';

export interface ChallengePageInput {
  readonly route: ChallengeRoute;
  readonly resourceUrl: string;
  readonly options: readonly PaymentOption[];
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

function optionRow(option: PaymentOption): string {
  const { asset } = option;
  const network = asset.network.v1Name === undefined ? asset.network.caip2 : `${asset.network.v1Name} (${asset.network.caip2})`;
  const cells = [
    `${atomicToDecimal(option.amount, asset.decimals)} ${asset.symbol}`,
    network,
    // Config checksummed both addresses.
    option.payTo,
    asset.address,
  ];
  return `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
}

/** The page sent with a 402 to a browser (`Accept: text/html`). Every interpolated string is escaped. */
export function renderChallengePage(input: ChallengePageInput): string {
  const { route, resourceUrl, options } = input;
  const title = route.description === '' ? 'Payment required' : route.description;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)} · 402 Payment Required</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}table{border-collapse:collapse}td,th{padding:.3rem .8rem .3rem 0;text-align:left;vertical-align:top}code,td{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}</style>
</head>
<body>
<h1>402 Payment Required</h1>
<p>${escapeHtml(title)}</p>
<p>Resource: <code>${escapeHtml(resourceUrl)}</code></p>
<table>
<thead><tr><th>Price</th><th>Network</th><th>Pay to</th><th>Token</th></tr></thead>
<tbody>
${options.map(optionRow).join('\n')}
</tbody>
</table>
<p>Each request is paid separately over the <a href="https://x402.org">x402</a> protocol with a signed
USDC authorization (EIP-3009). Use an x402 client, such as <code>@x402/fetch</code> or <code>x402-fetch</code>:
it reads this response's <code>PAYMENT-REQUIRED</code> header (or the JSON body for v1 clients),
signs, and repeats the request with a <code>PAYMENT-SIGNATURE</code> (or <code>X-PAYMENT</code>) header.</p>
</body>
</html>
`;
}
