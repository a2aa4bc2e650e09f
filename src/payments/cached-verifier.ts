/**
 * A `Verifier` wrapped with the caches that are safe for payments, for any inner verifier (the
 * local viem checker or a facilitator client).
 *
 * The rule: only answers that can never turn into "valid" are kept for long; an answer that may
 * change is kept for seconds; "valid" is never kept, because it includes "the nonce is unused",
 * which stops being true the moment anyone settles the authorization. (The ledger's nonce
 * reservation, not this cache, is what stops replays; a cache miss only costs a chain read.)
 *
 * 1. In-flight collapse: concurrent verifications of the same payment for the same option share
 *    one inner call. Held only while that call runs.
 * 2. Used nonces, per (chain, token, payer, nonce): once the chain says an authorization nonce is
 *    used, no payload with that nonce can ever settle. Kept until the LRU evicts it. Entries are
 *    only created from a verifier's `nonce_already_used`, which the reference (and the local
 *    verifier) report only after the signature checked out, so a forged payload cannot mark a
 *    victim's nonce.
 * 3. Final refusals, per exact payment and option: wrong scheme, network, recipient or amount
 *    are facts about the bytes; an expired authorization stays expired; a bad signature stays bad
 *    (it could only change if the payer's account later gained or changed its code, and then the
 *    client simply signs again). Kept until the LRU evicts it.
 * 4. Insufficient balance, per exact payment and option: the payer may top up, so kept for
 *    `balanceTtlMs` (seconds at most), measured on the injected clock.
 *
 * Everything else (valid, not yet valid, token problems) goes to the inner verifier every time.
 * Infrastructure errors are never cached; every collapsed caller gets the same rejection.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { PaymentOption } from '../config/types.js';
import type { DecodedPayment } from '../protocol/types.js';
import { nonceKeyString, type Clock, type PaymentContext, type Verifier, type VerifyResult } from './ports.js';
import { REASON } from '../protocol/reasons.js';

/** How long an insufficient-balance answer is reused; a payer who tops up waits at most this. */
export const DEFAULT_BALANCE_TTL_MS = 2_000;
/** Entries in each long-lived cache. Keys are 44-byte hashes, results a few hundred bytes. */
export const DEFAULT_CACHE_SIZE = 50_000;

/** Reasons that never become valid for the same payment and option (cache 3). */
const FINAL_REASONS: ReadonlySet<string> = new Set([
  REASON.scheme,
  REASON.networkMismatch,
  REASON.signature,
  REASON.recipientMismatch,
  REASON.validBefore,
  REASON.valueMismatch,
  REASON.valueV1,
]);

export interface CachedVerifierOptions {
  readonly clock: Clock;
  readonly balanceTtlMs?: number;
  readonly maxEntries?: number;
}

/** Hit/miss counts; a metrics hook reads them. */
export interface CachedVerifierCounters {
  /** Answered from cache 2, 3 or 4 without calling the inner verifier. */
  hits: number;
  /** Called the inner verifier. */
  misses: number;
  /** Joined a call already in flight. */
  collapsed: number;
}

/** Wraps `inner` with the caches described above. */
export class CachedVerifier implements Verifier {
  readonly #inner: Verifier;
  readonly #clock: Clock;
  readonly #balanceTtlMs: number;
  readonly #inFlight = new Map<string, Promise<VerifyResult>>();
  readonly #usedNonces: LRUCache<string, true>;
  readonly #final: LRUCache<string, VerifyResult>;
  readonly #lowBalance: LRUCache<string, { readonly result: VerifyResult; readonly expiresAtMs: number }>;
  readonly counters: CachedVerifierCounters = { hits: 0, misses: 0, collapsed: 0 };

  constructor(inner: Verifier, options: CachedVerifierOptions) {
    this.#inner = inner;
    this.#clock = options.clock;
    this.#balanceTtlMs = options.balanceTtlMs ?? DEFAULT_BALANCE_TTL_MS;
    const max = options.maxEntries ?? DEFAULT_CACHE_SIZE;
    this.#usedNonces = new LRUCache({ max });
    this.#final = new LRUCache({ max });
    this.#lowBalance = new LRUCache({ max });
  }

  verify(payment: DecodedPayment, option: PaymentOption, context: PaymentContext): Promise<VerifyResult> {
    const nonce = nonceKey(payment, option);
    if (this.#usedNonces.has(nonce)) {
      this.counters.hits++;
      return Promise.resolve({ valid: false, reason: REASON.nonceUsed, payer: payment.payload.authorization.from });
    }
    const key = paymentKey(payment, option);
    const final = this.#final.get(key);
    if (final !== undefined) {
      this.counters.hits++;
      return Promise.resolve(final);
    }
    const low = this.#lowBalance.get(key);
    if (low !== undefined) {
      if (low.expiresAtMs > this.#clock.nowMs()) {
        this.counters.hits++;
        return Promise.resolve(low.result);
      }
      this.#lowBalance.delete(key);
    }
    const running = this.#inFlight.get(key);
    if (running !== undefined) {
      this.counters.collapsed++;
      return running;
    }

    this.counters.misses++;
    const call = this.#inner
      .verify(payment, option, context)
      .then((result) => {
        this.#remember(key, nonce, result);
        return result;
      })
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, call);
    return call;
  }

  #remember(key: string, nonce: string, result: VerifyResult): void {
    if (result.valid) return; // never: "valid" includes "nonce unused"
    if (result.reason === REASON.nonceUsed) this.#usedNonces.set(nonce, true);
    else if (FINAL_REASONS.has(result.reason)) this.#final.set(key, result);
    else if (result.reason === REASON.insufficientBalance) {
      this.#lowBalance.set(key, { result, expiresAtMs: this.#clock.nowMs() + this.#balanceTtlMs });
    }
  }
}

const digest = (text: string): string => createHash('sha256').update(text).digest('base64');
/** Hex is case-insensitive; names and versions are not, so only hex fields are folded. */
const lower = (hex: string): string => hex.toLowerCase();

/** The replay identity of an authorization (EIP-3009 nonces are per token and payer), as the ledger keys it. */
function nonceKey(payment: DecodedPayment, option: PaymentOption): string {
  const { from, nonce } = payment.payload.authorization;
  return nonceKeyString({ chainId: option.asset.network.chainId, asset: option.asset.address, payer: from, nonce });
}

/**
 * Everything a verification's answer depends on: the whole signed payload (not the signature
 * alone: a payload can pair a valid signature with altered fields, and must not share the answer
 * of the genuine one), how it was sent, and the option's terms. Hashed, since smart-wallet
 * signatures can run to kilobytes.
 */
function paymentKey(payment: DecodedPayment, option: PaymentOption): string {
  const a = payment.payload.authorization;
  const o = option;
  // JSON, not a joined string: names may contain any separator.
  return digest(
    JSON.stringify([
      payment.x402Version,
      payment.scheme,
      payment.network,
      payment.accepted?.scheme ?? '',
      lower(payment.payload.signature),
      lower(a.from),
      lower(a.to),
      a.value.toString(),
      a.validAfter.toString(),
      a.validBefore.toString(),
      lower(a.nonce),
      o.scheme,
      o.asset.network.caip2,
      o.asset.network.v1Name ?? '',
      lower(o.asset.address),
      o.asset.eip712Name,
      o.asset.eip712Version,
      lower(o.payTo),
      o.amount.toString(),
    ]),
  );
}
