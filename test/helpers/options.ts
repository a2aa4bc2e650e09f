/**
 * PaymentOption fixtures: USDC on Base mainnet (eip155:8453, v1 name `base`), the asset the official
 * clients pay by default, plus a builder for variants (other amounts, payees, chains).
 */
import type { PaymentRequirements } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import type { PrivateKeyAccount } from 'viem';
import { minimumAfterTimeout } from '../../src/config/schema.js';
import type { Address, AssetConfig, NetworkConfig, PaymentOption, RouteConfig, UpstreamConfig } from '../../src/config/types.js';
import { requirementV2 } from '../../src/protocol/challenge.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import type { DecodedPayment } from '../../src/protocol/types.js';

export const BASE_USDC: Address = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
export const PAY_TO: Address = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';

export const BASE: NetworkConfig = Object.freeze({
  name: 'base',
  caip2: 'eip155:8453',
  chainId: 8453,
  v1Name: 'base',
  rpc: Object.freeze(['http://127.0.0.1:8545']),
  verify: 'local',
  settle: Object.freeze({ mode: 'facilitator', facilitators: [] }),
  proofConfirmations: 1,
  proofMaxAgeSeconds: 3600,
});

export const USDC_BASE: AssetConfig = Object.freeze({
  id: 'usdc@base',
  network: BASE,
  address: BASE_USDC,
  eip712Name: 'USD Coin',
  eip712Version: '2',
  decimals: 6,
  symbol: 'USDC',
});

/** A chain without a v1 name (Arbitrum One): v2 only. */
export const ARBITRUM: NetworkConfig = Object.freeze({ ...BASE, name: 'arbitrum', caip2: 'eip155:42161', chainId: 42161, v1Name: undefined });

export const USDC_ARBITRUM: AssetConfig = Object.freeze({
  ...USDC_BASE,
  id: 'usdc@arbitrum',
  network: ARBITRUM,
  address: '0xaf88d065e77c8cC2239327C5EDb3A432268e5831',
});

/** `$0.01` of USDC on Base to PAY_TO, 300 s; override any field. */
export function makeOption(overrides: Partial<PaymentOption> = {}): PaymentOption {
  return Object.freeze({
    scheme: 'exact',
    asset: USDC_BASE,
    amount: 10_000n,
    payTo: PAY_TO,
    maxTimeoutSeconds: 300,
    ...overrides,
  });
}

const UPSTREAM: UpstreamConfig = Object.freeze({ name: 'legacy', url: 'http://127.0.0.1:8080', timeoutMs: 30_000, idleTimeoutMs: 30_000, sseIdleTimeoutMs: undefined, headers: {} });

/** A priced `GET /v1/weather` route over the given options. */
export function makeRoute(options: readonly PaymentOption[], overrides: Partial<RouteConfig> = {}): RouteConfig {
  return Object.freeze({
    index: 0,
    match: 'GET /v1/weather',
    upstream: UPSTREAM,
    price: Object.freeze({ kind: 'priced', options }),
    mode: 'enforce',
    allow: undefined,
    description: 'Current weather',
    mimeType: 'application/json',
    settlement: 'after',
    minValiditySeconds: minimumAfterTimeout(UPSTREAM),
    proof: false,
    ...overrides,
  });
}

/**
 * A payment for `makeOption()` as the official v2 client (`@x402/evm`'s ExactEvmScheme) signs it,
 * through the gateway's own header decoder. It carries real time: verify it on the real clock.
 */
export async function officialPayment(signer: PrivateKeyAccount): Promise<DecodedPayment> {
  // The gateway's own v2 wire form of the option; protocol-compat.test.ts proves @x402/core reads it.
  const accepted = requirementV2(makeOption()) as PaymentRequirements;
  const result = await new ExactEvmScheme(signer).createPaymentPayload(2, accepted);
  const header = Buffer.from(JSON.stringify({ x402Version: 2, accepted, payload: result.payload })).toString('base64');
  const decoded = decodePaymentHeader({ paymentSignature: header });
  if (decoded.kind !== 'ok') throw new Error(`official payload did not decode: ${JSON.stringify(decoded)}`);
  return decoded.payment;
}
