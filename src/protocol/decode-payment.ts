/**
 * The one place a payment header is decoded: `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1), both
 * standard base64 of a JSON `PaymentPayload`.
 *
 * Strict on purpose. Every number is a canonical decimal string checked before `BigInt` sees it
 * (`BigInt("")` is `0n`, `BigInt(" 1")` is `1n`, `BigInt("0x10")` is `16n`: a lax parser turns a
 * malformed field into a valid-looking one). Every address and nonce is hex of the exact length,
 * and unknown fields are refused. The schemas accept exactly what the official clients send
 * (`x402` 1.2.0, `@x402/core` + `@x402/evm` 2.27.0; see test/unit/protocol-compat.test.ts):
 *
 *   v1: { x402Version: 1, scheme, network, payload: { signature, authorization } }
 *   v2: { x402Version: 2, payload: { authorization, signature }, accepted, resource?, extensions? }
 *
 * v2 `resource` is the challenge's resource object echoed and `extensions` the server's plus the
 * client's; both are opaque here (the core client's own schema also allows them to be `null`).
 */
import { getAddress } from 'viem';
import { z } from 'zod';
import { decodeBase64Json, type Base64JsonFailure } from './base64.js';
import { GATEWAY_REASON } from './reasons.js';
import type { DecodedPayment, ExactEvmPayload, Hex, PaymentHeaderName, WireRequirementV2 } from './types.js';

/** EIP-3009 signatures: 65-byte ECDSA from an EOA, longer for ERC-1271 / ERC-6492 smart wallets. */
export const MIN_SIGNATURE_BYTES = 65;
/** Generous for a smart-wallet signature with its ERC-6492 deployment data; the header limit binds first. */
export const MAX_SIGNATURE_BYTES = 4096;
/** Longest `error` detail returned to the caller; zod messages can quote attacker-chosen keys. */
const MAX_MESSAGE_LENGTH = 200;

/** Why a header was refused; stable snake_case. */
export type MalformedReason =
  | Base64JsonFailure
  | typeof GATEWAY_REASON.invalidX402Version
  | typeof GATEWAY_REASON.unsupportedScheme
  | typeof GATEWAY_REASON.invalidPayload;

export type DecodeOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly payment: DecodedPayment }
  | { readonly kind: 'malformed'; readonly reason: MalformedReason; readonly message: string };

/** The two payment request headers' raw values; `undefined` when absent. */
export interface PaymentHeaders {
  readonly paymentSignature?: string | undefined;
  readonly xPayment?: string | undefined;
}

const MAX_UINT256_DECIMAL = (2n ** 256n - 1n).toString();
const CANONICAL_DECIMAL = /^(0|[1-9][0-9]{0,77})$/;

/** `0`..`2^256-1` in canonical decimal; a pure string check, safe on any input. */
function isCanonicalUint256(text: string): boolean {
  if (!CANONICAL_DECIMAL.test(text)) return false;
  // Same length and no leading zeros: string order is numeric order.
  return text.length < MAX_UINT256_DECIMAL.length || text <= MAX_UINT256_DECIMAL;
}

const SIGNATURE_HEX = /^0x(?:[0-9a-fA-F]{2})+$/;

const uint256String = z.string().refine(isCanonicalUint256, {
  message: 'must be a canonical decimal integer string (digits only, no leading zeros, at most 2^256-1)',
});
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, { message: 'must be 0x followed by 40 hex digits' });
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, { message: 'must be 0x followed by 64 hex digits' });
const signature = z
  .string()
  .min(2 + 2 * MIN_SIGNATURE_BYTES, { message: `must be at least ${MIN_SIGNATURE_BYTES} bytes` })
  .max(2 + 2 * MAX_SIGNATURE_BYTES, { message: `must be at most ${MAX_SIGNATURE_BYTES} bytes` })
  .regex(SIGNATURE_HEX, { message: 'must be 0x followed by an even number of hex digits' });
// A v1 name (`base-sepolia`) or CAIP-2 (`eip155:8453`); bounded so it is safe to log.
const network = z.string().regex(/^[-_:a-zA-Z0-9]{1,64}$/, { message: 'must be a network name or CAIP-2 id' });
const jsonObject = z.record(z.string(), z.unknown());

const exactEvmPayload = z.strictObject({
  signature,
  authorization: z.strictObject({
    from: address,
    to: address,
    value: uint256String,
    validAfter: uint256String,
    validBefore: uint256String,
    nonce: bytes32,
  }),
});

const paymentV1 = z.strictObject({
  x402Version: z.literal(1),
  scheme: z.literal('exact'),
  network,
  payload: exactEvmPayload,
});

const acceptedV2 = z.strictObject({
  scheme: z.literal('exact'),
  network,
  amount: uint256String,
  asset: address,
  payTo: address,
  maxTimeoutSeconds: z.number().int().positive(),
  extra: jsonObject.nullish(),
});

const paymentV2 = z.strictObject({
  x402Version: z.literal(2),
  resource: jsonObject.nullish(),
  accepted: acceptedV2,
  payload: exactEvmPayload,
  extensions: jsonObject.nullish(),
});

const malformed = (reason: MalformedReason, message: string): DecodeOutcome => ({
  kind: 'malformed',
  reason,
  message: message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH)}…` : message,
});

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'payload does not match the schema';
  const path = issue.path.map(String).join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

const lowerHex = (text: string): Hex => `0x${text.slice(2).toLowerCase()}`;

/**
 * Numbers become bigint only here, after the schema proved them canonical. Addresses are
 * checksummed, and the nonce and signature lowercased: the replay guard keys on the nonce, and
 * `0xAB…` and `0xab…` are the same bytes32 on chain.
 */
function toExactEvmPayload(payload: z.infer<typeof exactEvmPayload>): ExactEvmPayload {
  const { authorization } = payload;
  return {
    signature: lowerHex(payload.signature),
    authorization: {
      from: getAddress(authorization.from),
      to: getAddress(authorization.to),
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
      nonce: lowerHex(authorization.nonce),
    },
  };
}

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The scheme the payload names, read before the full schema so a non-`exact` one gets its own reason. */
function claimedScheme(raw: Readonly<Record<string, unknown>>, version: 1 | 2): unknown {
  if (version === 1) return raw['scheme'];
  const accepted = raw['accepted'];
  return isRecord(accepted) ? accepted['scheme'] : undefined;
}

/**
 * Decodes the payment header of a request. `PAYMENT-SIGNATURE` wins when both are present; the
 * protocol version comes from the decoded `x402Version`, not from the header's name.
 */
export function decodePaymentHeader(headers: PaymentHeaders): DecodeOutcome {
  let text: string;
  let header: PaymentHeaderName;
  if (headers.paymentSignature !== undefined) {
    text = headers.paymentSignature;
    header = 'payment-signature';
  } else if (headers.xPayment !== undefined) {
    text = headers.xPayment;
    header = 'x-payment';
  } else {
    return { kind: 'none' };
  }

  const decoded = decodeBase64Json(text);
  if (!decoded.ok) return malformed(decoded.reason, decoded.message);
  const raw = decoded.value;

  const version = raw['x402Version'];
  if (version !== 1 && version !== 2) return malformed(GATEWAY_REASON.invalidX402Version, 'x402Version must be 1 or 2');

  const scheme = claimedScheme(raw, version);
  if (typeof scheme === 'string' && scheme !== 'exact') {
    return malformed(GATEWAY_REASON.unsupportedScheme, `scheme "${scheme}" is not supported; only "exact" is`);
  }

  if (version === 1) {
    const parsed = paymentV1.safeParse(raw);
    if (!parsed.success) return malformed(GATEWAY_REASON.invalidPayload, describe(parsed.error));
    return {
      kind: 'ok',
      payment: {
        x402Version: 1,
        header,
        scheme: 'exact',
        network: parsed.data.network,
        accepted: undefined,
        payload: toExactEvmPayload(parsed.data.payload),
        raw,
      },
    };
  }

  const parsed = paymentV2.safeParse(raw);
  if (!parsed.success) return malformed(GATEWAY_REASON.invalidPayload, describe(parsed.error));
  const { accepted: wire } = parsed.data;
  const accepted: WireRequirementV2 = {
    scheme: wire.scheme,
    network: wire.network,
    amount: wire.amount,
    asset: wire.asset,
    payTo: wire.payTo,
    maxTimeoutSeconds: wire.maxTimeoutSeconds,
    extra: wire.extra ?? {},
  };
  return {
    kind: 'ok',
    payment: {
      x402Version: 2,
      header,
      scheme: 'exact',
      network: wire.network,
      accepted,
      payload: toExactEvmPayload(parsed.data.payload),
      raw,
    },
  };
}
