/**
 * Local verification of `exact` EVM payments (EIP-3009), mirroring the reference facilitator's
 * checks and reason strings (`@x402/evm` 2.27 `verifyEIP3009`; x402-protocol.md §3.2):
 *
 *   scheme → network → signature (ERC-1271 when the payer has code, else 65-byte ECDSA that
 *   recovers to `from`) → `to == payTo` → `validBefore >= now + 6` → `validAfter <= now` →
 *   `value == amount` → `authorizationState(from, nonce) == false` → `balanceOf(from) >= value`.
 *
 * Instead of the reference's `eth_call` simulation we read the nonce state and balance directly
 * (the design's choice), so a token that reverts for a reason we do not read (a blacklist, a
 * pause) passes verify and fails at settlement, which reports it without charging.
 *
 * Cost: checks that need no RPC run first, so most bad payloads cost no chain round trip. The one
 * departure from strict reference order this causes: a 65-byte signature that recovers to `from`
 * is provisionally accepted, and whether `from` has code (EIP-7702 delegation, where ERC-1271
 * decides instead) is read together with the nonce and balance. A payload that both fails a
 * pure check and is such a 7702 signature gets the pure check's reason rather than the signature
 * reason; it is refused either way.
 *
 * Gas: a payer with code decides what its signature check costs, in this verification and in the
 * settlement transaction. The ERC-1271 call is bounded (chain-reader.ts), and when the network
 * settles locally the settlement's gas is estimated here too, for payers with code only, so a
 * payment whose settlement would exceed `settle.maxGas` is refused before anything is forwarded
 * (under `settlement: after` the upstream answers before the settler runs). An EOA payer's
 * `transferWithAuthorization` costs what the token the operator chose makes it cost, so EOAs pay
 * for no extra RPC call.
 *
 * Payer facts are cached where an attacker cannot turn them against us: whether an address has
 * code, for CODE_TTL_MS or NO_CODE_TTL_MS (it changes only by a deployment or an EIP-7702
 * delegation, and a stale answer costs at most a refused payment or a failed settlement, never a
 * free one), and a balance
 * too short for a payment, for BALANCE_TTL_MS per (token, payer), used only to refuse: a flood of
 * fresh authorizations from an empty wallet costs one read per payer per BALANCE_TTL_MS. Such a
 * refusal says `insufficient_balance` without reading the nonce, so an authorization that is both
 * spent and unfunded may hear that rather than `nonce_already_used`; it is refused either way.
 * The nonce state and balance are read in one call through Multicall3 where the chain has it.
 */
import { isAddressEqual } from 'viem';
import { LRUCache } from 'lru-cache';
import type { NetworkConfig, PaymentOption } from '../../config/types.js';
import type { DecodedPayment, Hex, X402Version } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import type { Clock, Verifier, VerifyResult } from '../ports.js';
import { createViemChainReader, type ExactEvmChainReader } from './chain-reader.js';
import { REASON, type ExactEvmReason } from '../../protocol/reasons.js';
import { classifySignature, recoverEcdsaSigner, type SignatureShape } from './signature.js';
import { transferWithAuthorizationDigest } from './typed-data.js';

/** The reference's grace: an authorization must stay valid this long past verification. */
export const VALID_BEFORE_GRACE_SECONDS = 6n;
/** Recovered signers kept; one entry is ~600 bytes (the key is the payload as text). */
export const DEFAULT_SIGNER_CACHE_SIZE = 10_000;
/** How long an address's code is believed to be there: code is rarely taken away. */
export const CODE_TTL_MS = 600_000;
/**
 * How long an address is believed to have no code: short, since a counterfactual wallet refused
 * as undeployed is deployed and then pays again.
 */
export const NO_CODE_TTL_MS = 10_000;
/** How long a balance short of a payment is believed (a payer who tops up waits at most this). */
export const BALANCE_TTL_MS = 2_000;
/** Payer addresses whose facts are kept. */
const PAYER_FACTS_SIZE = 50_000;

/**
 * Whether settling `payment` would stay within the local settler's gas cap: the refusal, or
 * undefined when it fits (`LocalExactEvmSettler.checkGas`). Throws on infrastructure faults.
 */
export type SettlementGasCheck = (
  payment: DecodedPayment,
  option: PaymentOption,
) => Promise<{ readonly reason: string; readonly message?: string } | undefined>;

export type LocalExactEvmVerifierOptions = {
  readonly clock: Clock;
  readonly signerCacheSize?: number;
  /** Asked for payers with code once every other check passed; none when the network does not settle locally. */
  readonly settlementGas?: SettlementGasCheck;
} & ({ readonly client: ChainClient; readonly erc1271GasLimit?: bigint; readonly multicall3?: `0x${string}` } | { readonly reader: ExactEvmChainReader });

/** The name a payload of this version uses for the network: v1 legacy name, v2 CAIP-2. */
export function expectedNetworkName(version: X402Version, network: NetworkConfig): string | undefined {
  switch (version) {
    case 1:
      return network.v1Name;
    case 2:
      return network.caip2;
  }
}

/** Scheme and network: the first two checks, pure. */
export function checkSchemeAndNetwork(payment: DecodedPayment, option: PaymentOption): ExactEvmReason | undefined {
  if (payment.scheme !== 'exact' || option.scheme !== 'exact' || (payment.accepted !== undefined && payment.accepted.scheme !== 'exact')) {
    return REASON.scheme;
  }
  if (payment.network !== expectedNetworkName(payment.x402Version, option.asset.network)) return REASON.networkMismatch;
  return undefined;
}

/** Recipient, validity window and amount, in the reference's order; pure. */
export function checkAuthorizationTerms(payment: DecodedPayment, option: PaymentOption, nowSeconds: bigint): ExactEvmReason | undefined {
  const auth = payment.payload.authorization;
  if (!isAddressEqual(auth.to, option.payTo)) return REASON.recipientMismatch;
  if (auth.validBefore < nowSeconds + VALID_BEFORE_GRACE_SECONDS) return REASON.validBefore;
  if (auth.validAfter > nowSeconds) return REASON.validAfter;
  if (auth.value !== option.amount) return payment.x402Version === 1 ? REASON.valueV1 : REASON.valueMismatch;
  return undefined;
}

/** Verifies EIP-3009 payments against one chain, with viem, without a facilitator. */
export class LocalExactEvmVerifier implements Verifier {
  readonly #reader: ExactEvmChainReader;
  readonly #clock: Clock;
  readonly #settlementGas: SettlementGasCheck | undefined;
  /**
   * Recovered ECDSA signer per (EIP-712 domain, authorization, signature), i.e. per (digest,
   * signature): a pure function of its key, so the answer can never change: cached
   * for as long as the LRU keeps it. Saves the key recovery on repeated checks of one payload
   * (client retries, verify-then-settle paths, collapsed duplicates that missed): ~0.06 ms with
   * native secp256k1, 2 to 3 ms on viem's fallback path.
   */
  readonly #signers: LRUCache<string, { readonly signer: `0x${string}` | undefined }>;
  /** Whether an address has code, and until when (unix ms) that is believed. */
  readonly #codes = new LRUCache<string, { readonly hasCode: boolean; readonly untilMs: number }>({ max: PAYER_FACTS_SIZE });
  /** Per (token, payer): a balance that fell short of a payment, and until when it is believed. */
  readonly #shortBalances = new LRUCache<string, { readonly balance: bigint; readonly untilMs: number }>({ max: PAYER_FACTS_SIZE });
  /** Hit/miss counts of the signer cache; a metrics hook reads them. */
  readonly counters = { signerCacheHits: 0, signerCacheMisses: 0 };

  constructor(options: LocalExactEvmVerifierOptions) {
    this.#reader =
      'reader' in options
        ? options.reader
        : createViemChainReader(options.client, {
            ...(options.erc1271GasLimit === undefined ? {} : { erc1271GasLimit: options.erc1271GasLimit }),
            ...(options.multicall3 === undefined ? {} : { multicall3: options.multicall3 }),
          });
    this.#clock = options.clock;
    this.#settlementGas = options.settlementGas;
    this.#signers = new LRUCache({ max: options.signerCacheSize ?? DEFAULT_SIGNER_CACHE_SIZE });
  }

  async verify(payment: DecodedPayment, option: PaymentOption): Promise<VerifyResult> {
    const network = option.asset.network;
    if (network.chainId !== this.#reader.chainId) {
      // A wiring bug, not a payment outcome: one verifier serves one chain.
      throw new Error(`verifier for chain ${this.#reader.chainId} asked to verify a payment on ${network.caip2}`);
    }
    const auth = payment.payload.authorization;
    const payer = auth.from;
    const invalid = (reason: ExactEvmReason): VerifyResult => ({ valid: false, reason, payer });

    const early = checkSchemeAndNetwork(payment, option);
    if (early !== undefined) return invalid(early);

    // Computed only when needed: on a signer-cache hit for an EOA it is not.
    let digestMemo: Hex | undefined;
    const digest = (): Hex => (digestMemo ??= transferWithAuthorizationDigest(option.asset, auth));
    const shape = classifySignature(payment.payload.signature);
    // A 6492 wrapper that does not decode is invalid whoever the payer is: no chain read needed.
    if (shape.kind === 'malformed') return invalid(REASON.signature);
    const recovered = shape.kind === 'ecdsa' ? await this.#recover(payment, option, shape.signature, digest) : undefined;
    const ecdsaRecovered = recovered !== undefined && isAddressEqual(recovered, payer);
    if (!ecdsaRecovered) {
      // Only a contract wallet can still make this signature valid: ask the chain now, since the
      // signature reason comes before every other one.
      const reason = await this.#contractWalletSignature(payer, digest, shape, await this.#hasCode(payer));
      if (reason !== undefined) return invalid(reason);
    }

    const terms = checkAuthorizationTerms(payment, option, this.#clock.nowSeconds());
    if (terms !== undefined) return invalid(terms);

    const asset = option.asset.address;
    const balanceKey = `${asset.toLowerCase()}:${payer.toLowerCase()}`;
    const short = this.#shortBalances.get(balanceKey);
    const knownShort = short !== undefined && short.untilMs > this.#clock.nowMs() && short.balance < auth.value;
    const [payerHasCode, reads] = await Promise.all([
      ecdsaRecovered ? this.#hasCode(payer) : Promise.resolve(false),
      knownShort ? Promise.resolve(undefined) : this.#reader.nonceStateAndBalance(asset, payer, auth.nonce),
    ]);
    if (payerHasCode) {
      // The key that signed also has code (EIP-7702): the token asks the code, and so do we.
      const reason = await this.#contractWalletSignature(payer, digest, shape, true);
      if (reason !== undefined) return invalid(reason);
    }
    if (reads === undefined) return invalid(REASON.insufficientBalance);
    const { used, balance } = reads;
    // The reference answers `eip3009_not_supported` when `authorizationState` cannot be called;
    // a token whose `balanceOf` reverts is no more usable.
    if (used === undefined || balance === undefined) return invalid(REASON.eip3009NotSupported);
    if (used) return invalid(REASON.nonceUsed);
    if (balance < auth.value) {
      this.#shortBalances.set(balanceKey, { balance, untilMs: this.#clock.nowMs() + BALANCE_TTL_MS });
      return invalid(REASON.insufficientBalance);
    }
    // Last, as it is the dearest check and only a payment that is otherwise valid deserves it.
    if (this.#settlementGas !== undefined && (!ecdsaRecovered || payerHasCode)) {
      const refusal = await this.#settlementGas(payment, option);
      if (refusal !== undefined) return { valid: false, reason: refusal.reason, ...(refusal.message === undefined ? {} : { message: refusal.message }), payer };
    }
    return { valid: true, payer };
  }

  /** Whether `address` has code, from the cache while it is believed (CODE_TTL_MS). */
  async #hasCode(address: `0x${string}`): Promise<boolean> {
    const key = address.toLowerCase();
    const now = this.#clock.nowMs();
    const known = this.#codes.get(key);
    if (known !== undefined && known.untilMs > now) return known.hasCode;
    const hasCode = await this.#reader.hasCode(address);
    this.#codes.set(key, { hasCode, untilMs: now + (hasCode ? CODE_TTL_MS : NO_CODE_TTL_MS) });
    return hasCode;
  }

  /** The signature check for an account with code (ERC-1271) or a counterfactual wallet (ERC-6492). */
  async #contractWalletSignature(
    payer: `0x${string}`,
    digest: () => Hex,
    shape: Exclude<SignatureShape, { readonly kind: 'malformed' }>,
    hasCode: boolean,
  ): Promise<ExactEvmReason | undefined> {
    if (!hasCode) {
      // Not deployed: an ECDSA signature that did not recover is simply wrong; a 6492 wrapper
      // would need its factory run, which the reference allows for no factory by default.
      return shape.kind === 'erc6492' ? REASON.factoryNotAllowed : REASON.signature;
    }
    const signature = shape.kind === 'erc6492' ? shape.inner : shape.signature;
    return (await this.#reader.isValidErc1271Signature(payer, digest(), signature)) ? undefined : REASON.signature;
  }

  async #recover(payment: DecodedPayment, option: PaymentOption, signature: Hex, digest: () => Hex): Promise<`0x${string}` | undefined> {
    const key = signerKey(payment, option);
    const cached = this.#signers.get(key);
    if (cached !== undefined) {
      this.counters.signerCacheHits++;
      return cached.signer;
    }
    this.counters.signerCacheMisses++;
    const signer = await recoverEcdsaSigner(digest(), signature);
    this.#signers.set(key, { signer });
    return signer;
  }
}

/**
 * Everything the EIP-712 digest and the signature depend on, as text: the same identity as
 * (digest, signature) without hashing. JSON, since a token's EIP-712 name may contain any
 * separator; hex is lowercased because its case carries no meaning.
 */
function signerKey(payment: DecodedPayment, option: PaymentOption): string {
  const a = payment.payload.authorization;
  const asset = option.asset;
  return JSON.stringify([
    asset.network.chainId,
    asset.address.toLowerCase(),
    asset.eip712Name,
    asset.eip712Version,
    a.from.toLowerCase(),
    a.to.toLowerCase(),
    a.value.toString(),
    a.validAfter.toString(),
    a.validBefore.toString(),
    a.nonce.toLowerCase(),
    payment.payload.signature.toLowerCase(),
  ]);
}
