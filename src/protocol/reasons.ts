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
