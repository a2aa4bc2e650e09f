/**
 * What the demo prints once everything is up: what runs where, who holds which key, and commands
 * to paste into another terminal. Pure: values in, lines out.
 */
import { formatUnits } from 'viem';
import { TEST_USDC_DECIMALS } from '../devchain/token.js';
import { DEMO_ROUTES } from './demo-config.js';
import type { DemoChain } from './demo-chain.js';

export interface DemoBannerParams {
  readonly chain: Pick<DemoChain, 'rpcUrl' | 'chainId' | 'token' | 'settler' | 'payer' | 'payerKey' | 'payTo'>;
  readonly payerFunds: bigint;
  readonly upstreamUrl: string;
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  readonly configPath: string;
  readonly ledgerPath: string;
  /** How to invoke this CLI from where the operator stands, e.g. `npx x402-gateway`. */
  readonly cli: string;
}

/** What runs where, who holds which key, and the routes. */
export function demoSummary(p: DemoBannerParams): string[] {
  const { chain } = p;
  const routeWidth = Math.max(...DEMO_ROUTES.map((r) => `${r.method} ${r.path}`.length));
  return [
    '',
    'x402-gateway demo is running. Everything is local: a throw-away chain, a test token, no real money.',
    '',
    `  Chain     ${chain.rpcUrl}   anvil, chain id ${chain.chainId} (posing as Base)`,
    `  USDC      ${chain.token}   test token at Base's USDC address, ${TEST_USDC_DECIMALS} decimals`,
    `  Upstream  ${p.upstreamUrl}   the demo API the gateway charges for`,
    `  Gateway   ${p.gatewayUrl}   call the API through here`,
    `  Admin     ${p.adminUrl}   /healthz, /readyz`,
    `  Config    ${p.configPath}`,
    `  Ledger    ${p.ledgerPath}`,
    '',
    `  Payer     ${chain.payer}   holds ${formatUnits(p.payerFunds, TEST_USDC_DECIMALS)} USDC`,
    `  Payer key ${chain.payerKey}`,
    `            (anvil's public dev key #1: anyone can spend from it on a real network, so never fund it)`,
    `  Settler   ${chain.settler}   dev key #0: the gateway's own key, submits payments and pays the gas`,
    `  payTo     ${chain.payTo}   dev key #2's address: where payments go`,
    '',
    'Routes (gateway -> upstream):',
    ...DEMO_ROUTES.map((r) => `  ${`${r.method} ${r.path}`.padEnd(routeWidth)}  ${r.price.padEnd(6)}  ${r.description}`),
  ];
}

/** Commands to paste into another terminal while the demo runs. */
export function demoInstructions(p: DemoBannerParams): string[] {
  const weather = `${p.gatewayUrl}/v1/weather?city=Paris`;
  const key = `--key ${p.chain.payerKey}`;
  const echoBody = '{"hello":"x402"}';
  return [
    '',
    'Try it from another terminal:',
    '',
    '  # 1. Call a paid route without paying: 402, with the price in the PAYMENT-REQUIRED header',
    `  curl -i ${shellQuote(weather)}`,
    '',
    '  # 2. Pay with the official x402 client: it signs a USDC authorization and retries',
    `  ${p.cli} pay ${shellQuote(weather)} ${key}`,
    `  ${p.cli} pay ${shellQuote(`${p.gatewayUrl}/v1/echo`)} -X POST -H 'content-type: application/json' -d ${shellQuote(echoBody)} ${key}`,
    `  ${p.cli} pay ${shellQuote(`${p.gatewayUrl}/v1/stream`)} ${key}`,
    '',
    '  # 3. A deferred route: served at once, the payment settled in a batch a moment later;',
    '  #    the receipt names a status URL that goes from queued to settled',
    `  ${p.cli} pay ${shellQuote(`${p.gatewayUrl}/v1/time`)} ${key}`,
    '',
    '  # 4. Free routes pass straight through',
    `  curl ${shellQuote(`${p.gatewayUrl}/health`)}`,
    '',
    '  # 5. The receipts the gateway recorded, and its readiness',
    `  ${p.cli} receipts --config ${shellQuote(p.configPath)}`,
    `  curl ${shellQuote(`${p.adminUrl}/readyz`)}`,
    '',
    'Request logs follow below. Press Ctrl-C to stop everything.',
    '',
  ];
}

/** Quotes for POSIX shells (and zsh, where an unquoted `?` is a glob) only when needed. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
