/**
 * PaymentOption fixtures: USDC on Base mainnet (eip155:8453, v1 name `base`), the asset the official
 * clients pay by default, plus a builder for variants (other amounts, payees, chains).
 */
import type { PaymentRequirements } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import type { PrivateKeyAccount } from 'viem';
import { minimumAfterTimeout } from '../../src/config/schema.js';
import type { Address, AssetConfig, NetworkConfig, PaymentOption, PaymentTerms, RouteConfig, UpstreamConfig } from '../../src/config/types.js';
import { requirementV2 } from '../../src/protocol/challenge.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import { withWire } from '../../src/protocol/option-wire.js';
import type { PaymentContext } from '../../src/payments/ports.js';
import type { DecodedPayment, Eip3009Authorization, Hex, WireRequirementV2, X402Version } from '../../src/protocol/types.js';

export const BASE_USDC: Address = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
export const PAY_TO: Address = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';
/** The payer of `makePayment()` (anvil's first dev account). */
export const PAYMENT_FROM: Address = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';

export const BASE: NetworkConfig = Object.freeze({
  name: 'base',
  caip2: 'eip155:8453',
  chainId: 8453,
  v1Name: 'base',
  rpc: Object.freeze(['http://127.0.0.1:8545']),
  verify: 'local',
  settle: Object.freeze({ mode: 'facilitator', facilitators: [] }),
  multicall3: undefined,
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

/** The request a payment is for, as Checkout passes it to the ports (v1 facilitator requirements name it). */
export const PAYMENT_CONTEXT: PaymentContext = Object.freeze({
  resourceUrl: 'https://gw.example.com/v1/weather',
  route: Object.freeze({ description: 'Weather', mimeType: 'application/json' }),
});

/** `$0.01` of USDC on Base to PAY_TO, 300 s; override any term. The wire form is built as config builds it. */
export function makeOption(overrides: Partial<PaymentTerms> = {}): PaymentOption {
  return withWire<PaymentTerms>({
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

export interface PaymentOverrides {
  /** Default 2. */
  readonly x402Version?: X402Version;
  /** The option paid for: `to`, `value` and the v2 `accepted` echo follow it. Default `makeOption()`. */
  readonly option?: PaymentOption;
  /** Default: the option's network by the version's name for it (CAIP-2, or the v1 name). */
  readonly network?: string;
  /** v2 only. Default: the option's own v2 requirement, as a client echoes it, on `network`. */
  readonly accepted?: WireRequirementV2 | undefined;
  readonly authorization?: Partial<Eip3009Authorization>;
  /** Default: 65 bytes of 0x22, which no key signed: for code that never checks a signature. */
  readonly signature?: Hex;
}

/**
 * A decoded payment as the header decoder would give it, for `makeOption()` by default, with
 * `raw` (what a facilitator is sent) the wire form of the same fields. Unsigned unless
 * `signature` is given: sign `authorization` with `transferWithAuthorizationTypedData`.
 */
export function makePayment(overrides: PaymentOverrides = {}): DecodedPayment {
  const version = overrides.x402Version ?? 2;
  const option = overrides.option ?? makeOption();
  const network = overrides.network ?? (version === 2 ? option.asset.network.caip2 : (option.asset.network.v1Name ?? ''));
  const authorization: Eip3009Authorization = {
    from: PAYMENT_FROM,
    to: option.payTo,
    value: option.amount,
    validAfter: 0n,
    validBefore: 4_000_000_000n,
    nonce: `0x${'11'.repeat(32)}`,
    ...overrides.authorization,
  };
  const signature = overrides.signature ?? `0x${'22'.repeat(65)}`;
  const wirePayload = {
    signature,
    authorization: {
      ...authorization,
      value: authorization.value.toString(),
      validAfter: authorization.validAfter.toString(),
      validBefore: authorization.validBefore.toString(),
    },
  };
  const payload = { signature, authorization };
  if (version === 1) {
    return {
      x402Version: 1,
      header: 'x-payment',
      scheme: 'exact',
      network,
      accepted: undefined,
      payload,
      raw: { x402Version: 1, scheme: 'exact', network, payload: wirePayload },
    };
  }
  const accepted = 'accepted' in overrides ? overrides.accepted : { ...requirementV2(option), network };
  return {
    x402Version: 2,
    header: 'payment-signature',
    scheme: 'exact',
    network,
    accepted,
    payload,
    raw: { x402Version: 2, ...(accepted === undefined ? {} : { accepted }), payload: wirePayload },
  };
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
