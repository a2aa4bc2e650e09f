/**
 * The message a payer signs to use its own transfer as an `X-Payment-Proof`. Pure text: signing
 * and recovery (EIP-191 `personal_sign`) are the payments layer's.
 *
 * Why a signature at all: a transaction hash is public (in the mempool, then on chain) and `payTo`
 * is in every 402, so a hash alone is a bearer token that whoever presents first spends. The
 * sender's signature over the hash and the resource makes the proof the payer's: the gateway
 * serves only the address that sent the transaction, and only for the URL it named, so a
 * signature seen on one request cannot be replayed at another resource while the hash is unspent.
 *
 * One line, fixed format (documented in the README):
 *
 *     x402 payment proof: transaction <0x + 64 lower-case hex digits> for <resource URL>
 *
 * where the resource URL is exactly the `resource` the gateway's 402 names for the request (the
 * v1 body's `accepts[].resource`, the v2 header's `resource.url`), query string included.
 */
import { GATEWAY_REASON } from './reasons.js';
import type { Hex } from './types.js';

/** Request header: the sender's 65-byte EIP-191 signature of `proofMessage`, as 0x hex. */
export const PROOF_SIGNATURE_HEADER = 'x-payment-proof-signature';

/** Challenge header on a route that accepts proofs: the message to sign, hash left as `PROOF_TX_PLACEHOLDER`. */
export const PROOF_MESSAGE_HEADER = 'X-Payment-Proof-Message';

/** The 402 reasons of the proof flow decided before any chain read (the checker's own are in payments/tx-proof.ts). */
export const PROOF_REASON = {
  /** The route does not accept `X-Payment-Proof` (the default): the header was not read. */
  notEnabled: GATEWAY_REASON.proofNotEnabled,
  /** `X-Payment-Proof` came without `X-Payment-Proof-Signature`. */
  signatureRequired: GATEWAY_REASON.proofSignatureRequired,
} as const;

/** Stands for the transaction hash in `PROOF_MESSAGE_HEADER`. */
export const PROOF_TX_PLACEHOLDER = '<tx hash>';

const PREFIX = 'x402 payment proof: transaction ';

function message(tx: string, resourceUrl: string): string {
  return `${PREFIX}${tx} for ${resourceUrl}`;
}

/**
 * The exact text the sender of `txHash` signs to spend it on `resourceUrl`. The hash is
 * lower-cased so that the two spellings of one hash need one signature, not two.
 */
export function proofMessage(txHash: Hex, resourceUrl: string): string {
  return message(txHash.toLowerCase(), resourceUrl);
}

/**
 * The message with a placeholder for the hash, for the 402 of a proof route; `undefined` when the
 * URL holds a character a header value cannot carry (clients then build it from `resource`).
 */
export function proofMessageTemplate(resourceUrl: string): string | undefined {
  const template = message(PROOF_TX_PLACEHOLDER, resourceUrl);
  return /^[\x20-\x7e]*$/.test(template) ? template : undefined;
}

/** A 65-byte signature as 0x hex: r, s and v, what an ordinary account's `personal_sign` returns. */
export function isProofSignature(value: string): value is Hex {
  return /^0x[0-9a-fA-F]{130}$/.test(value);
}
