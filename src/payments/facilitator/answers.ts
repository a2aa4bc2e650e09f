/**
 * The one place a facilitator's answers are decoded: `/verify`, `/settle` and `/supported` bodies
 * are untrusted JSON from a third party. The readers are strict enough that a malformed answer is
 * never read as success (it is `undefined`, which the client reports as `unavailable`), and every
 * string kept is cut to a length, since reasons and messages end up in our 402s and logs.
 */
import { GATEWAY_REASON } from '../../protocol/reasons.js';
import { isTxHash } from '../../protocol/types.js';

/** Reason and message strings come from a third party and end up in our 402s and logs. */
export const MAX_FACILITATOR_REASON_LENGTH = 128;
export const MAX_FACILITATOR_MESSAGE_LENGTH = 512;
/** The refusal reason used when a facilitator says `isValid:false` without saying why. */
export const UNSPECIFIED_INVALID_REASON = GATEWAY_REASON.invalidPayment;

export type FacilitatorVerifyAnswer =
  | { readonly isValid: true; readonly payer?: string }
  | { readonly isValid: false; readonly invalidReason: string; readonly invalidMessage?: string; readonly payer?: string };

export interface FacilitatorSettleAnswer {
  readonly success: boolean;
  readonly errorReason?: string;
  readonly errorMessage?: string;
  /** A tx hash on success (checked); on failure possibly `""`, or the hash of a tx still pending. */
  readonly transaction: string;
  readonly network?: string;
  readonly payer?: string;
}

/** One (version, scheme, network) a facilitator handles. */
export interface FacilitatorKind {
  readonly x402Version: number;
  readonly scheme: string;
  readonly network: string;
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface FacilitatorSupported {
  readonly kinds: readonly FacilitatorKind[];
  readonly extensions: readonly string[];
  readonly signers: Readonly<Record<string, readonly string[]>>;
}

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `undefined` and `null` read as absent (the SDK's `nullish`); a present non-string is a malformed body. */
function optionalString(record: Readonly<Record<string, unknown>>, key: string, max: number): string | undefined | false {
  const value = record[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') return false;
  return value.length > max ? value.slice(0, max) : value;
}

/** A `/verify` body, or `undefined` when it is not an answer to act on. */
export function readVerifyAnswer(status: number, json: unknown): FacilitatorVerifyAnswer | undefined {
  if (!isRecord(json) || typeof json['isValid'] !== 'boolean') return undefined;
  const payer = optionalString(json, 'payer', MAX_FACILITATOR_REASON_LENGTH);
  if (payer === false) return undefined;
  const withPayer = payer === undefined || payer === '' ? {} : { payer };
  if (json['isValid']) {
    // A 4xx that says "valid" contradicts itself: not an answer to act on.
    return status < 300 ? { isValid: true, ...withPayer } : undefined;
  }
  const reason = optionalString(json, 'invalidReason', MAX_FACILITATOR_REASON_LENGTH);
  const message = optionalString(json, 'invalidMessage', MAX_FACILITATOR_MESSAGE_LENGTH);
  if (reason === false || message === false) return undefined;
  return {
    isValid: false,
    invalidReason: reason === undefined || reason === '' ? UNSPECIFIED_INVALID_REASON : reason,
    ...(message === undefined ? {} : { invalidMessage: message }),
    ...withPayer,
  };
}

/** A `/settle` body, or `undefined` when it is not an answer to act on. */
export function readSettleAnswer(status: number, json: unknown): FacilitatorSettleAnswer | undefined {
  if (!isRecord(json) || typeof json['success'] !== 'boolean') return undefined;
  const transaction = optionalString(json, 'transaction', 256);
  const network = optionalString(json, 'network', MAX_FACILITATOR_REASON_LENGTH);
  const payer = optionalString(json, 'payer', MAX_FACILITATOR_REASON_LENGTH);
  const reason = optionalString(json, 'errorReason', MAX_FACILITATOR_MESSAGE_LENGTH);
  const message = optionalString(json, 'errorMessage', MAX_FACILITATOR_MESSAGE_LENGTH);
  if (transaction === false || network === false || payer === false || reason === false || message === false) return undefined;
  const optional = {
    ...(network === undefined ? {} : { network }),
    ...(payer === undefined || payer === '' ? {} : { payer }),
  };
  if (json['success']) {
    // Success must name its transaction and come with a 2xx; the adapter checks the rest.
    if (status >= 300 || transaction === undefined || !isTxHash(transaction)) return undefined;
    return { success: true, transaction, ...optional };
  }
  return {
    success: false,
    transaction: transaction ?? '',
    ...(reason === undefined || reason === '' ? {} : { errorReason: reason }),
    ...(message === undefined ? {} : { errorMessage: message }),
    ...optional,
  };
}

/** A `/supported` body, or `undefined` when it is not one. */
export function readSupported(status: number, json: unknown): FacilitatorSupported | undefined {
  if (status >= 300 || !isRecord(json) || !Array.isArray(json['kinds'])) return undefined;
  const kinds: FacilitatorKind[] = [];
  for (const entry of json['kinds']) {
    if (!isRecord(entry)) return undefined;
    const { x402Version, scheme, network, extra } = entry;
    if (typeof x402Version !== 'number' || typeof scheme !== 'string' || typeof network !== 'string') return undefined;
    if (extra !== undefined && extra !== null && !isRecord(extra)) return undefined;
    kinds.push({ x402Version, scheme, network, ...(isRecord(extra) ? { extra } : {}) });
  }
  // v1-era facilitators answer only `{kinds}`; the official client defaults the rest, so do we.
  const extensions = json['extensions'] ?? [];
  const signers = json['signers'] ?? {};
  if (!Array.isArray(extensions) || !extensions.every((e): e is string => typeof e === 'string')) return undefined;
  if (!isRecord(signers)) return undefined;
  const signerLists: Record<string, readonly string[]> = {};
  for (const [family, list] of Object.entries(signers)) {
    if (!Array.isArray(list) || !list.every((s): s is string => typeof s === 'string')) return undefined;
    signerLists[family] = list;
  }
  return { kinds, extensions, signers: signerLists };
}
