/**
 * x402 wire types (v1 and v2) and the normalised form the rest of the gateway works with.
 * Pure: no fastify, no viem.
 */
/** 0x-prefixed hex of any even length. */
export type Hex = `0x${string}`;

/** A 0x-prefixed, 40-hex-digit EVM address, checksummed (config and the decoder checksum every one). */
export type Address = `0x${string}`;

/** The chain id of an EVM CAIP-2 network id (`eip155:8453`: 8453); undefined for anything else. */
export function evmChainId(caip2: string): number | undefined {
  const match = /^eip155:(\d+)$/.exec(caip2);
  return match === null ? undefined : Number(match[1]);
}

/** A transaction hash: 0x and 32 bytes of hex. */
export function isTxHash(value: string): value is Hex {
  return /^0x[0-9a-fA-F]{64}$/.test(value);
}

export type X402Version = 1 | 2;

/** Which request header carried the payment; the receipt header answers in kind. */
export type PaymentHeaderName = 'payment-signature' | 'x-payment';

/** An EIP-3009 `TransferWithAuthorization`, numbers already parsed to bigint. */
export interface Eip3009Authorization {
  readonly from: Address;
  readonly to: Address;
  readonly value: bigint;
  readonly validAfter: bigint;
  readonly validBefore: bigint;
  /** 32 bytes, 0x + 64 hex. */
  readonly nonce: Hex;
}

/** The `exact` scheme's EVM payload: a signature over an EIP-3009 authorization. */
export interface ExactEvmPayload {
  readonly signature: Hex;
  readonly authorization: Eip3009Authorization;
}

/** v2 `PaymentRequirements` exactly as it travels on the wire (what a client echoes in `accepted`). */
export interface WireRequirementV2 {
  readonly scheme: string;
  readonly network: string;
  readonly amount: string;
  readonly asset: string;
  readonly payTo: string;
  readonly maxTimeoutSeconds: number;
  readonly extra: Readonly<Record<string, unknown>>;
}

/** v1 `PaymentRequirements` as sent in the 402 body. */
export interface WireRequirementV1 {
  readonly scheme: 'exact';
  readonly network: string;
  readonly maxAmountRequired: string;
  readonly resource: string;
  readonly description: string;
  readonly mimeType: string;
  readonly payTo: string;
  readonly maxTimeoutSeconds: number;
  readonly asset: string;
  readonly extra: Readonly<Record<string, unknown>>;
}

/** A payment header after strict decoding, either protocol version. */
export interface DecodedPayment {
  readonly x402Version: X402Version;
  readonly header: PaymentHeaderName;
  readonly scheme: 'exact';
  /** The network as the payload names it: a v1 name (`base`) or CAIP-2 (`eip155:8453`). */
  readonly network: string;
  /** v2 only: the requirement the client chose, echoed. */
  readonly accepted: WireRequirementV2 | undefined;
  readonly payload: ExactEvmPayload;
  /** The decoded JSON object, unchanged, for forwarding to a facilitator. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** The settlement receipt, `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`. */
export interface SettlementReceipt {
  readonly success: boolean;
  readonly transaction: string;
  /** In the request's version format: v1 name for v1, CAIP-2 for v2. */
  readonly network: string;
  readonly payer?: string;
  readonly errorReason?: string;
  /**
   * `settlement: deferred`: accepted and queued, not yet on chain (`transaction: ""`). `status`
   * is the URL that tells `queued | settled | failed`. SettleResponse's `extra` (x402 2.2).
   */
  readonly extra?: { readonly settlement: 'deferred'; readonly id: string; readonly status: string };
}
