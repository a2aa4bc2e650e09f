/**
 * The reference facilitator's reason strings (`@x402/evm` 2.27), so clients that branch on them
 * behave as they would against an official facilitator. See x402-protocol.md §3.2 and §3.3.
 */
export const REASON = {
  scheme: 'invalid_exact_evm_scheme',
  networkMismatch: 'invalid_exact_evm_network_mismatch',
  signature: 'invalid_exact_evm_signature',
  recipientMismatch: 'invalid_exact_evm_recipient_mismatch',
  validBefore: 'invalid_exact_evm_payload_authorization_valid_before',
  validAfter: 'invalid_exact_evm_payload_authorization_valid_after',
  /** v2: `value` differs from the requirement's `amount`. */
  valueMismatch: 'invalid_exact_evm_payload_authorization_value_mismatch',
  /** v1: the same check, under its v1 name. */
  valueV1: 'invalid_exact_evm_authorization_value',
  nonceUsed: 'invalid_exact_evm_nonce_already_used',
  insufficientBalance: 'invalid_exact_evm_insufficient_balance',
  /** `authorizationState` (or `balanceOf`) could not be called: the asset is not an EIP-3009 token. */
  eip3009NotSupported: 'invalid_exact_evm_eip3009_not_supported',
  /** An ERC-6492 signature for a wallet that is not deployed; the reference allows no factory by default. */
  factoryNotAllowed: 'eip6492_factory_not_allowed',
  transactionFailed: 'invalid_exact_evm_transaction_failed',
  transferEventMismatch: 'invalid_exact_evm_transfer_event_mismatch',
  settlementPending: 'settlement_pending',
  /** A fault of ours (RPC down before anything was sent, a bug): see `SettleResult` in ports.ts. */
  unexpectedSettleError: 'unexpected_settle_error',
  /**
   * The gateway's own: settling would take more gas than the network's `settle.maxGas` (a payer
   * with code decides what its signature check costs). Refused before anything is sent.
   */
  settlementGasOverLimit: 'settlement_gas_over_limit',
  /**
   * The gateway's own: a settlement of this payer's was mined and reverted (it cost gas and moved
   * nothing), so the payer is refused for `settle.revertPenaltySeconds`.
   */
  payerSuspended: 'payer_suspended',
} as const;

/** One of the reason strings above. */
export type ExactEvmReason = (typeof REASON)[keyof typeof REASON];

/**
 * The gateway's own reason strings, for refusals and outcomes the reference facilitator has no
 * word for. Where x402 already names the same refusal (`invalid_network`, `invalid_payload`, ...)
 * it is that name. Stable: clients branch on them, and receipt rows and metric labels keep them.
 */
export const GATEWAY_REASON = {
  /** No payment option is on the payment's network (or x402 v1 cannot name the network). */
  invalidNetwork: 'invalid_network',
  /** The payment's network is offered, but no option matches what the payment accepted. */
  noMatchingRequirements: 'no_matching_requirements',
  headerTooLarge: 'header_too_large',
  invalidBase64: 'invalid_base64',
  invalidUtf8: 'invalid_utf8',
  invalidJson: 'invalid_json',
  notAJsonObject: 'not_a_json_object',
  invalidX402Version: 'invalid_x402_version',
  unsupportedScheme: 'unsupported_scheme',
  invalidPayload: 'invalid_payload',
  /** A facilitator answered `isValid: false` without an `invalidReason`. */
  invalidPayment: 'invalid_payment',
  settlementNotConfigured: 'settlement_not_configured',
  /** No facilitator settled: one refused the gateway's credentials (401/403) and none may have received it. */
  facilitatorAuthRefused: 'facilitator_auth_refused',
  /** The `pending` row written before a settlement is sent; its outcome replaces it. */
  settling: 'settling',
  proofNotEnabled: 'proof_not_enabled',
  proofSignatureRequired: 'proof_signature_required',
  proofMalformed: 'proof_malformed',
  proofSignatureMalformed: 'proof_signature_malformed',
  proofNotSupported: 'proof_not_supported',
  proofAlreadyUsed: 'proof_already_used',
  proofSignatureInvalid: 'proof_signature_invalid',
  proofSignatureMismatch: 'proof_signature_mismatch',
  proofTxNotFound: 'proof_tx_not_found',
  proofTxFailed: 'proof_tx_failed',
  proofTransferNotFound: 'proof_transfer_not_found',
  proofAmountTooLow: 'proof_amount_too_low',
  proofInsufficientConfirmations: 'proof_insufficient_confirmations',
  proofTooOld: 'proof_too_old',
  clientClosed: 'client_closed',
  reconciled: 'reconciled',
  authorizationExpiredUnsettled: 'authorization_expired_unsettled',
  settlementNotSent: 'settlement_not_sent',
  settlementNonceUsedElsewhere: 'settlement_nonce_used_elsewhere',
  upstreamTimeout: 'upstream_timeout',
  upstreamUnavailable: 'upstream_unavailable',
  unchargedForwardsExceeded: 'uncharged_forwards_exceeded',
  failedPaymentsExceeded: 'failed_payments_exceeded',
  methodOverride: 'method_override',
  formTooLarge: 'form_too_large',
  bodyTooLarge: 'body_too_large',
  /** Not a reason: the metric label of a reason that is not short snake_case (a facilitator's free text). */
  unlistedReasonLabel: 'other',
} as const;

/** One of the gateway's own reason strings above. */
export type GatewayReason = (typeof GATEWAY_REASON)[keyof typeof GATEWAY_REASON];

/** The upstream answered `status` (>= 400) under `settlement: after`: released, nothing charged. */
export function upstreamStatusReason(status: number): `upstream_status_${number}` {
  return `upstream_status_${status}`;
}

/** The catalogue's name for the `upstreamStatusReason` family. */
export const UPSTREAM_STATUS_FAMILY = 'upstream_status_<code>';

/**
 * Where a reason shows: `402` the challenge's `error` (and the receipt header of a failed
 * settlement); `receipt` a receipt row's `reason`; `both`; `log` the request's log line only;
 * `metric` the verification-failure metric's label only. Every reason is also in the log line,
 * and every refusal before forwarding in the metric.
 */
export type ReasonWhere = '402' | 'receipt' | 'both' | 'log' | 'metric';

export interface ReasonSpec {
  readonly where: ReasonWhere;
  readonly meaning: string;
}

/**
 * Every reason string the gateway itself can write, protocol's and its own; the README's
 * "Reason strings" table is checked against it by a test. A facilitator's reasons that are not
 * listed here pass through as it sent them.
 */
export const REASON_CATALOGUE: Readonly<Record<string, ReasonSpec>> = {
  [REASON.scheme]: { where: 'both', meaning: 'The payment is not for the `exact` scheme its requirement names.' },
  [REASON.networkMismatch]: { where: 'both', meaning: "The payment's network is not its requirement's." },
  [REASON.signature]: { where: 'both', meaning: 'The signature is not the payer\'s over this authorization (EOA, ERC-1271 or ERC-6492).' },
  [REASON.recipientMismatch]: { where: 'both', meaning: 'The authorization pays someone other than `payTo`.' },
  [REASON.validBefore]: { where: 'both', meaning: 'The authorization has expired, or would before settling (`minValiditySeconds`).' },
  [REASON.validAfter]: { where: 'both', meaning: 'The authorization is not valid yet.' },
  [REASON.valueMismatch]: { where: 'both', meaning: 'v2: the authorized value differs from the price.' },
  [REASON.valueV1]: { where: 'both', meaning: 'v1: the authorized value differs from the price.' },
  [REASON.nonceUsed]: { where: 'both', meaning: 'The authorization was used already, or is in use by a concurrent request.' },
  [REASON.insufficientBalance]: { where: 'both', meaning: "The payer's balance does not cover the price." },
  [REASON.eip3009NotSupported]: { where: 'both', meaning: 'The asset does not answer EIP-3009 calls.' },
  [REASON.factoryNotAllowed]: { where: 'both', meaning: 'An ERC-6492 signature for an undeployed wallet; no factory is allowed.' },
  [REASON.transactionFailed]: { where: 'both', meaning: 'The settlement transaction was mined and reverted: nothing moved.' },
  [REASON.transferEventMismatch]: { where: 'both', meaning: 'The settlement was mined without the expected `Transfer`; the authorization is spent.' },
  [REASON.settlementPending]: { where: 'both', meaning: 'The settlement was sent and its outcome is not known yet; the row stays `pending`.' },
  [REASON.unexpectedSettleError]: { where: 'both', meaning: 'A fault of ours while settling (RPC down, no facilitator answered, a bug).' },
  [REASON.settlementGasOverLimit]: { where: 'both', meaning: "Settling would take more gas than the network's `settle.maxGas`; nothing was sent." },
  [REASON.payerSuspended]: { where: 'both', meaning: "A settlement of this payer's reverted within `settle.revertPenaltySeconds`." },
  [GATEWAY_REASON.invalidNetwork]: { where: 'both', meaning: "No option is on the payment's network, or x402 v1 cannot name it." },
  [GATEWAY_REASON.noMatchingRequirements]: { where: 'both', meaning: "The network is offered, but no option matches the payment's." },
  [GATEWAY_REASON.headerTooLarge]: { where: 'receipt', meaning: 'The payment header is longer than 16 KiB (a 400, `GW_ERR_PAYMENT_MALFORMED`).' },
  [GATEWAY_REASON.invalidBase64]: { where: 'receipt', meaning: 'The payment header is not canonical standard base64 (a 400).' },
  [GATEWAY_REASON.invalidUtf8]: { where: 'receipt', meaning: 'The payment header does not decode to UTF-8 (a 400).' },
  [GATEWAY_REASON.invalidJson]: { where: 'receipt', meaning: 'The payment header does not decode to JSON (a 400).' },
  [GATEWAY_REASON.notAJsonObject]: { where: 'receipt', meaning: 'The payment header decodes to JSON that is not an object (a 400).' },
  [GATEWAY_REASON.invalidX402Version]: { where: 'receipt', meaning: '`x402Version` is not 1 or 2 (a 400).' },
  [GATEWAY_REASON.unsupportedScheme]: { where: 'receipt', meaning: 'The payment is for a scheme other than `exact` (a 400).' },
  [GATEWAY_REASON.invalidPayload]: { where: 'receipt', meaning: 'The payment does not have the shape of an x402 payment (a 400).' },
  [GATEWAY_REASON.invalidPayment]: { where: 'both', meaning: 'A facilitator refused the payment without saying why.' },
  [GATEWAY_REASON.settlementNotConfigured]: { where: 'both', meaning: "The payment's network has no settler; nothing was charged." },
  [GATEWAY_REASON.facilitatorAuthRefused]: { where: 'receipt', meaning: 'A facilitator refused the gateway\'s credentials (a 502, `GW_ERR_FACILITATOR_AUTH`): nothing was charged.' },
  [GATEWAY_REASON.settling]: { where: 'receipt', meaning: 'The `pending` row written before a settlement is sent; its outcome replaces it.' },
  [GATEWAY_REASON.proofNotEnabled]: { where: '402', meaning: 'The route does not accept `X-Payment-Proof`.' },
  [GATEWAY_REASON.proofSignatureRequired]: { where: '402', meaning: '`X-Payment-Proof` came without `X-Payment-Proof-Signature`.' },
  [GATEWAY_REASON.proofMalformed]: { where: 'log', meaning: '`X-Payment-Proof` is not a transaction hash (a 400, `GW_ERR_PROOF_MALFORMED`).' },
  [GATEWAY_REASON.proofSignatureMalformed]: { where: 'log', meaning: '`X-Payment-Proof-Signature` is not 65 bytes of 0x hex (a 400).' },
  [GATEWAY_REASON.proofNotSupported]: { where: 'both', meaning: "None of the route's options' networks checks proofs." },
  [GATEWAY_REASON.proofAlreadyUsed]: { where: 'both', meaning: 'The transaction was spent on an earlier request.' },
  [GATEWAY_REASON.proofSignatureInvalid]: { where: 'both', meaning: 'The proof signature recovers to no address.' },
  [GATEWAY_REASON.proofSignatureMismatch]: { where: 'both', meaning: "The proof is not signed by the transaction's sender for this resource." },
  [GATEWAY_REASON.proofTxNotFound]: { where: 'both', meaning: 'The chain has no receipt for the transaction.' },
  [GATEWAY_REASON.proofTxFailed]: { where: 'both', meaning: 'The transaction reverted.' },
  [GATEWAY_REASON.proofTransferNotFound]: { where: 'both', meaning: "The transaction has no `Transfer` of the option's token from its sender to `payTo`." },
  [GATEWAY_REASON.proofAmountTooLow]: { where: 'both', meaning: 'The largest such transfer is below the price.' },
  [GATEWAY_REASON.proofInsufficientConfirmations]: { where: 'both', meaning: 'The transaction has fewer confirmations than `proofConfirmations`.' },
  [GATEWAY_REASON.proofTooOld]: { where: 'both', meaning: "The transaction's block is older than `proofMaxAgeSeconds`." },
  [GATEWAY_REASON.reconciled]: { where: 'receipt', meaning: 'The reconciler found the settlement on chain and recorded it (the request that paid had ended, or its replica had died).' },
  [GATEWAY_REASON.authorizationExpiredUnsettled]: {
    where: 'receipt',
    meaning: "A settlement's outcome was unknown (its facilitator did not say it landed), and the chain shows its authorization expired unused: nothing was charged.",
  },
  [GATEWAY_REASON.settlementNotSent]: { where: 'receipt', meaning: 'The reconciler found that the settlement transaction was never accepted by the node: nothing was charged.' },
  [GATEWAY_REASON.settlementNonceUsedElsewhere]: { where: 'receipt', meaning: "The settling key's nonce was used by another transaction: this settlement can no longer be mined." },
  [GATEWAY_REASON.clientClosed]: { where: 'receipt', meaning: 'The caller hung up: not charged before forwarding; after, a `settled` row whose answer was not delivered.' },
  [UPSTREAM_STATUS_FAMILY]: { where: 'receipt', meaning: 'The upstream answered this status (>= 400) under `settlement: after`: not charged.' },
  [GATEWAY_REASON.upstreamTimeout]: { where: 'receipt', meaning: 'The upstream did not answer in time (a 504): not charged under `settlement: after`.' },
  [GATEWAY_REASON.upstreamUnavailable]: { where: 'receipt', meaning: 'The upstream could not be reached (a 502): not charged under `settlement: after`.' },
  [GATEWAY_REASON.unchargedForwardsExceeded]: { where: 'log', meaning: 'The payer is over `limits.unchargedForwards` (a 429).' },
  [GATEWAY_REASON.failedPaymentsExceeded]: { where: 'log', meaning: 'The client, or the proven payer, is over `limits.failedPayments` (a 429).' },
  [GATEWAY_REASON.methodOverride]: { where: 'receipt', meaning: 'A `_method` override was refused (a 400); a reserved payment is released.' },
  [GATEWAY_REASON.formTooLarge]: { where: 'receipt', meaning: 'A form body too large to check for `_method` (a 413); a reserved payment is released.' },
  [GATEWAY_REASON.bodyTooLarge]: { where: 'receipt', meaning: "A request body over its route's `maxBodyBytes` (a 413); a reserved payment is released." },
  [GATEWAY_REASON.unlistedReasonLabel]: { where: 'metric', meaning: 'The label of a reason that is not short snake_case (a facilitator\'s free text).' },
};
