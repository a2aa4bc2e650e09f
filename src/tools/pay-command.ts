/**
 * `x402-gateway pay URL`: a small paying client for operators and scripts, built on the official
 * x402 v2 client packages (which also pay v1 servers). It refuses to pay more than `--max`.
 */
import { x402Client } from '@x402/core/client';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { decodePaymentResponseHeader, wrapFetchWithPayment } from '@x402/fetch';
import { parseArgs } from 'node:util';
import { privateKeyToAccount } from 'viem/accounts';
import type { CliIo } from '../cli-io.js';
import { dollarsToAtomic } from '../pricing.js';

/** The official client pays in USDC; `--max` must be a price USDC can express. */
const USDC_DECIMALS = 6;

/** The most `pay` spends on one request unless told otherwise: the legacy client's own cap. */
export const DEFAULT_MAX_PRICE = '$0.10';

const HELP = `Usage: x402-gateway pay URL [--max PRICE] [--method M] [--data BODY] [--header 'Name: value']... [--key 0xKEY]

Requests URL; on a 402 challenge, signs a payment with the official x402 client and retries.
  --max PRICE   refuse to pay more than this per request (default ${DEFAULT_MAX_PRICE}), e.g. '$0.05'
  --key 0xKEY   the payer's private key (default: the X402_PAYER_KEY environment variable)
Prints the status, the settlement receipt, and the body.`;

export async function runPayCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        max: { type: 'string', default: DEFAULT_MAX_PRICE },
        method: { type: 'string', short: 'X', default: 'GET' },
        data: { type: 'string', short: 'd' },
        header: { type: 'string', short: 'H', multiple: true, default: [] },
        key: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const url = positionals[0];
  const key = values.key ?? io.env['X402_PAYER_KEY'];
  if (!url || positionals.length > 1) {
    io.err(HELP);
    return 2;
  }
  if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    io.err('A payer key is needed: --key 0x<64 hex> or X402_PAYER_KEY.');
    return 2;
  }
  if (!dollarsToAtomic(values.max, USDC_DECIMALS).ok) {
    io.err(`--max must be a dollar price like '$0.05', not ${JSON.stringify(values.max)}`);
    return 2;
  }
  const headers: Record<string, string> = {};
  for (const h of values.header) {
    const colon = h.indexOf(':');
    if (colon < 1) {
      io.err(`--header must look like 'Name: value', not ${JSON.stringify(h)}`);
      return 2;
    }
    headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
  }

  // Spend controls: only the official default assets (USDC on known chains), at most --max each.
  const client = x402Client.fromConfig({ schemes: [], spendControls: { maxAmountPerPayment: values.max } });
  registerExactEvmScheme(client, { signer: privateKeyToAccount(key as `0x${string}`) });
  const payingFetch = wrapFetchWithPayment(fetch, client);
  let res: Response;
  try {
    res = await payingFetch(url, { method: values.method, headers, ...(values.data === undefined ? {} : { body: values.data }) });
  } catch (err) {
    io.err(`payment not made: ${(err as Error).message}`);
    return 1;
  }
  io.out(`status: ${res.status}`);
  const receipt = res.headers.get('payment-response') ?? res.headers.get('x-payment-response');
  if (receipt) io.out(`receipt: ${JSON.stringify(decodePaymentResponseHeader(receipt))}`);
  io.out(await res.text());
  return res.ok ? 0 : 1;
}
