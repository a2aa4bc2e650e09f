/**
 * Local settlement: the gateway's own key submits the payer's EIP-3009 authorization with
 * `transferWithAuthorization` and waits (bounded) for the receipt. Mirrors `@x402/evm` 2.27
 * `settleEIP3009` (x402-protocol.md §3.3) in its outcomes and reason strings.
 *
 * The one question every failure must answer is `maybeOnChain`: could money have moved? The
 * pipeline is split so that each step knows:
 *
 *   1. estimate gas (this is the simulation: an expired, used, badly signed or unfunded
 *      authorization reverts here) and fees (fee-estimate.ts); an estimate
 *      over `settle.maxGas` is refused (gas-limit.ts)   → a failure here sent nothing
 *   2. take a nonce, sign locally, hash                 → the tx hash is known before sending
 *   3. eth_sendRawTransaction, once                     → sent nothing only if the connection
 *                                                        failed or the node refused it outright
 *   4. wait for the receipt, bounded (receipt-wait.ts)  → no receipt in time: `settlement_pending`
 *
 * We sign and send ourselves rather than call `writeContract` so that an unclear send (a timeout)
 * still reports the transaction hash, which is what the receipt row and a later reconciliation
 * need. Sends go through their own transport that moves to the next RPC endpoint only when the
 * previous one was never reached, so a send is never repeated to a second node after the first
 * may have accepted it.
 *
 * Nonces come from the shared store (store-nonces.ts) when the settler has the store's
 * settlement log, and then each signed transaction is logged before it is broadcast (the
 * write-ahead log the reconciler works from: reconciler.ts). A settler on its own counts them
 * with a `NonceAllocator` shared by every settler of the key on the chain (nonce-allocator.ts).
 * A send the node refuses for its nonce is retried with a fresh one: the refused transaction
 * provably never entered the mempool.
 *
 * A mined revert costs the settler gas and moves nothing; it is reported `reverted`, and the
 * checkout then keeps the authorization spent and refuses the payer for a while (checkout.ts), so
 * one authorization buys at most one capped attempt.
 *
 * CPU per settlement matters (it bounds a gateway's paid throughput): the transaction is signed
 * by native libsecp256k1 (transaction-signer.ts), and the receipt is asked for directly right
 * after the send, then polled, rather than through viem's block watcher (receipt-wait.ts).
 */
import { createWalletClient, encodeFunctionData, isAddressEqual, keccak256, parseEventLogs, type Chain, type Transport, type WalletClient } from 'viem';
import { DEFAULT_SETTLE_MAX_GAS, DEFAULT_SETTLE_RECEIPT_TIMEOUT_MS } from '../../config/schema.js';
import type { Address, NetworkConfig, PaymentOption } from '../../config/types.js';
import { InfrastructureError } from '../../errors.js';
import type { DecodedPayment, Hex } from '../../protocol/types.js';
import { sendTransport, type ChainClient } from '../chain/client.js';
import type { Clock, PaymentContext, SettlementLog, SettleResult, Settler } from '../ports.js';
import { eip3009Abi, transferCall } from './abi.js';
import { FeeEstimate, loggedFees, type Fees } from './fee-estimate.js';
import { SettlementReconciler, type ReconcilerOptions } from './reconciler.js';
import { SettlementBatcher, type BatcherOptions } from './batcher.js';
import { overCapMessage, settlementGasLimit, type GasLimit } from './gas-limit.js';
import { NonceAllocator } from './nonce-allocator.js';
import { StoreNonces } from './store-nonces.js';
import { REASON, type ExactEvmReason } from '../../protocol/reasons.js';
import { clip as clipText, failureText, isContractFailure, NONCE_CONFLICT, neverReachedNode, reasonForTransferFailure, sendRejected } from '../chain/rpc-errors.js';
import { describeFault } from '../chain/describe-fault.js';
import { ReceiptWait } from './receipt-wait.js';
import { createTransactionSigner, type TransactionSigner } from './transaction-signer.js';
import { checkAuthorizationTerms, checkSchemeAndNetwork } from './verify.js';

/** Sends refused for a stale nonce are retried with a fresh one, this many times in all. */
export const MAX_SEND_ATTEMPTS = 3;
/** Longest failure detail kept in a result (they reach logs and receipt rows). */
const MAX_MESSAGE_LENGTH = 300;

export interface LocalExactEvmSettlerOptions {
  readonly network: NetworkConfig;
  /** Reads: gas and fee estimates, the account's pending nonce, receipts (polled at its interval). */
  readonly client: ChainClient;
  /** The settling account's key; it pays the gas. */
  readonly privateKey: Hex;
  readonly clock: Clock;
  /** Defaults to the network's `settle.receiptTimeoutMs`. */
  readonly receiptTimeoutMs?: number;
  /** Gas units; defaults to the network's `settle.maxGas`. See gas-limit.ts. */
  readonly maxGas?: bigint;
  /** See receipt-wait.ts; DEFAULT_REBROADCAST_AFTER_MS by default. */
  readonly rebroadcastAfterMs?: number;
  /**
   * Shared by every settler of one key on one chain (a reload may build a second one while the
   * first still settles); a fresh one by default.
   */
  readonly nonces?: NonceAllocator;
  /** Where raw transactions go; defaults to the network's endpoints, never-reached-only fallback. */
  readonly sendTransport?: Transport;
  /**
   * The shared store's write-ahead settlement log. With it, nonces come from the store (every
   * replica of the key shares them) and each transaction is logged before it is broadcast, for
   * the reconciler; without it (a settler used on its own), `nonces` counts them in this process.
   */
  readonly log?: SettlementLog;
}

/** Settles EIP-3009 payments on one chain with the gateway's own key. */
export class LocalExactEvmSettler implements Settler {
  readonly #network: NetworkConfig;
  readonly #client: ChainClient;
  /** Sends raw transactions only; it holds no account. */
  readonly #wallet: WalletClient<Transport, Chain>;
  readonly #signer: TransactionSigner;
  readonly #nonces: NonceAllocator;
  readonly #log: { readonly log: SettlementLog; readonly nonces: StoreNonces } | undefined;
  /** The account's pending transaction count on the chain (where either nonce source starts). */
  readonly #readPending: () => Promise<number>;
  readonly #receipts: ReceiptWait;
  readonly #clock: Clock;
  readonly #maxGas: bigint;
  readonly #fees: FeeEstimate;

  constructor(options: LocalExactEvmSettlerOptions) {
    this.#network = options.network;
    this.#client = options.client;
    this.#clock = options.clock;
    this.#fees = new FeeEstimate(options.client, options.clock);
    this.#signer = createTransactionSigner(options.privateKey);
    this.#nonces = options.nonces ?? new NonceAllocator(() => options.clock.nowMs());
    const address = this.#signer.address;
    this.#readPending = () => options.client.getTransactionCount({ address, blockTag: 'pending' });
    this.#log = options.log && { log: options.log, nonces: new StoreNonces(options.log, options.network.chainId, address, this.#readPending) };
    this.#wallet = createWalletClient({ chain: options.client.chain, transport: options.sendTransport ?? sendTransport(options.network) });
    const settle = options.network.settle;
    this.#receipts = new ReceiptWait({
      client: options.client,
      address: this.#signer.address,
      resend: (serialized) => this.#wallet.sendRawTransaction({ serializedTransaction: serialized }),
      clock: options.clock,
      timeoutMs: options.receiptTimeoutMs ?? (settle.mode === 'local' ? settle.receiptTimeoutMs : DEFAULT_SETTLE_RECEIPT_TIMEOUT_MS),
      ...(options.rebroadcastAfterMs === undefined ? {} : { rebroadcastAfterMs: options.rebroadcastAfterMs }),
    });
    this.#maxGas = options.maxGas ?? BigInt(settle.mode === 'local' ? settle.maxGas : DEFAULT_SETTLE_MAX_GAS);
  }

  /**
   * The reconciler of this settler's key (reconciler.ts), sharing its signer, fee estimate and
   * send path; undefined for a settler without the store's log.
   */
  reconciler(options: Pick<ReconcilerOptions, 'holder' | 'replaceAfterMs' | 'intervalMs' | 'gapGraceMs' | 'onOutcome' | 'onError' | 'queue' | 'onDeferredItem'>): SettlementReconciler | undefined {
    if (!this.#log) return undefined;
    return new SettlementReconciler({
      ...options,
      log: this.#log.log,
      client: this.#client,
      signer: this.#signer,
      fees: this.#fees,
      clock: this.#clock,
      send: (raw) => this.#wallet.sendRawTransaction({ serializedTransaction: raw }),
    });
  }

  /**
   * The batcher of this settler's key for `settlement: deferred` (batcher.ts), sharing its
   * signer, store nonces, fee estimate, send path and receipt wait; undefined without the log.
   */
  batcher(options: Omit<BatcherOptions, 'client' | 'signer' | 'nonces' | 'fees' | 'receipts' | 'wallet' | 'clock'>): SettlementBatcher | undefined {
    if (!this.#log) return undefined;
    return new SettlementBatcher({
      ...options,
      client: this.#client,
      signer: this.#signer,
      nonces: this.#log.nonces,
      fees: this.#fees,
      receipts: this.#receipts,
      wallet: this.#wallet,
      clock: this.#clock,
    });
  }

  /** The address that submits settlements and pays their gas. */
  get address(): Address {
    return this.#signer.address;
  }

  /**
   * Would settling `payment` stay within `settle.maxGas`? The same estimate `settle` runs first,
   * for verification to ask before anything is forwarded (under `settlement: after` the upstream
   * answers before `settle` runs). Resolves with the refusal, or undefined when it fits; throws
   * `InfrastructureError` when the chain cannot answer.
   */
  async checkGas(payment: DecodedPayment, option: PaymentOption): Promise<{ readonly reason: ExactEvmReason; readonly message: string } | undefined> {
    const data = transferData(payment);
    if (data === undefined) return { reason: REASON.signature, message: MALFORMED_6492_MESSAGE };
    let limit: GasLimit;
    try {
      limit = await this.#gasLimit(option.asset.address, data);
    } catch (err) {
      if (isContractFailure(err)) return { reason: reasonForTransferFailure(failureText(err)), message: clip(failureText(err)) };
      throw new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `chain ${this.#network.chainId}: eth_estimateGas failed: ${describe(err)}`, { cause: err });
    }
    return limit.kind === 'over_cap' ? { reason: REASON.settlementGasOverLimit, message: overCapMessage(limit) } : undefined;
  }

  async settle(payment: DecodedPayment, option: PaymentOption, context?: PaymentContext): Promise<SettleResult> {
    // Set once the raw transaction has left this process; from then on any failure may be on chain.
    const sent: { hash: Hex | undefined } = { hash: undefined };
    try {
      return await this.#settle(payment, option, context?.requestId, sent);
    } catch (err) {
      // A bug or an unforeseen fault (the store refused the log entry); the contract says settle
      // never throws. If a local nonce was taken and nothing sent, re-read it so later
      // settlements are not stuck behind a gap (the reconciler fills a store nonce's gap).
      if (sent.hash === undefined) this.#nonces.reset();
      return {
        success: false,
        reason: REASON.unexpectedSettleError,
        message: describe(err),
        ...(sent.hash === undefined ? {} : { transaction: sent.hash }),
        maybeOnChain: sent.hash !== undefined,
      };
    }
  }

  async #settle(payment: DecodedPayment, option: PaymentOption, requestId: string | undefined, sent: { hash: Hex | undefined }): Promise<SettleResult> {
    const auth = payment.payload.authorization;
    const asset = option.asset.address;
    if (option.asset.network.chainId !== this.#network.chainId) {
      return refused(REASON.unexpectedSettleError, `settler for ${this.#network.caip2} given a payment on ${option.asset.network.caip2}`);
    }
    // The reference re-runs verification (without chain reads) at settle time. The pure checks
    // cost microseconds: an authorization about to expire would likely be mined too late, and a
    // payment that never went through verification must not move money to another recipient.
    // Signature, nonce and balance are checked by the simulation below.
    const terms = checkSchemeAndNetwork(payment, option) ?? checkAuthorizationTerms(payment, option, this.#clock.nowSeconds());
    if (terms !== undefined) return refused(terms);

    const data = transferData(payment);
    if (data === undefined) return refused(REASON.signature, MALFORMED_6492_MESSAGE);

    // 1. Simulate (estimate), cap and price. Nothing has been sent if any of this fails.
    let gas: bigint;
    let fees: Fees;
    try {
      const [limit, estimatedFees] = await Promise.all([this.#gasLimit(asset, data), this.#fees.fees()]);
      if (limit.kind === 'over_cap') return refused(REASON.settlementGasOverLimit, overCapMessage(limit));
      gas = limit.gas;
      fees = estimatedFees;
    } catch (err) {
      if (isContractFailure(err)) return refused(reasonForTransferFailure(failureText(err)), failureText(err));
      return refused(REASON.unexpectedSettleError, `chain unavailable before sending: ${describe(err)}`);
    }

    // 2 + 3. Nonce, sign, log (with the store), send.
    const chainId = this.#network.chainId;
    const address = this.#signer.address;
    let ambiguousSend: string | undefined;
    let serialized: Hex;
    let nonce: number;
    for (let attempt = 1; ; attempt++) {
      nonce = this.#log ? await this.#log.nonces.take() : await this.#nonces.take(this.#readPending);
      serialized = await this.#signer.sign({ chainId, to: asset, data, gas, nonce, ...fees });
      const hash = keccak256(serialized);
      let logged = false;
      if (this.#log) {
        const entry = {
          chainId,
          settler: address,
          nonce,
          requestIds: requestId === undefined ? [] : [requestId],
          asset,
          payer: auth.from,
          payTo: auth.to,
          amount: auth.value.toString(),
          authorizationNonce: auth.nonce,
          validBefore: Number(auth.validBefore),
        };
        const transaction = { hash, raw: serialized, ...loggedFees(fees) };
        try {
          // Write-ahead: nothing is broadcast that the store does not know about.
          await this.#log.log.logSettlement(entry, transaction);
          logged = true;
        } catch (err) {
          await this.#log.nonces.unused(nonce, false).catch(() => undefined);
          throw err;
        }
      }
      sent.hash = hash;
      try {
        await this.#wallet.sendRawTransaction({ serializedTransaction: serialized });
        break;
      } catch (err) {
        // The node's words decide what its refusal means; messages never quote them (describe).
        const text = failureText(err);
        if (!neverReachedNode(err) && !sendRejected(err)) {
          // Timed out, a 5xx, an internal error, or anything unclear: the node may have it. Look for the receipt.
          ambiguousSend = describe(err);
          break;
        }
        sent.hash = undefined;
        if (this.#log) {
          await this.#log.nonces.unused(nonce, logged);
          // Refused for its nonce: the key was used outside the store, which catches up with the chain.
          if (NONCE_CONFLICT.test(text)) await this.#log.nonces.resync();
        } else {
          // Forget the count: the next take re-reads the pending count from the node.
          this.#nonces.reset();
        }
        if (neverReachedNode(err)) return refused(REASON.unexpectedSettleError, `chain unavailable: ${describe(err)}`);
        if (NONCE_CONFLICT.test(text) && attempt < MAX_SEND_ATTEMPTS) continue;
        // The pool refused our transaction (fees, gas, our funds): not the payer's doing.
        return refused(REASON.unexpectedSettleError, `the node refused the settlement transaction: ${describe(err)}`);
      }
    }
    const hash = sent.hash;

    // 4. Wait for the receipt, bounded (receipt-wait.ts).
    const awaited = await this.#receipts.receipt(hash, serialized, nonce);
    if (!('receipt' in awaited)) {
      if (ambiguousSend !== undefined && !this.#log) {
        // Never seen on chain after an unclear send: it may never have arrived, in which case its
        // nonce is a gap that would stall every later settlement. Re-read the pending nonce.
        // (A logged transaction is the reconciler's: it sends it again until it is mined.)
        this.#nonces.reset();
      }
      const why = `no receipt within ${this.#receipts.timeoutMs} ms${awaited.lastError === undefined ? '' : ` (last poll: ${describe(awaited.lastError)})`}`;
      return {
        success: false,
        reason: REASON.settlementPending,
        message: ambiguousSend === undefined ? why : `send unclear (${ambiguousSend}); ${why}`,
        transaction: hash,
        maybeOnChain: true,
      };
    }
    const receipt = awaited.receipt;
    if (receipt.status !== 'success') {
      // Mined and reverted: the authorization is untouched and nothing moved, but the gas (at
      // most the capped limit) is spent, and the simulation did not foresee it: never retried.
      return {
        success: false,
        reason: REASON.transactionFailed,
        message: `reverted on chain after using ${receipt.gasUsed} of ${gas} gas`,
        transaction: hash,
        maybeOnChain: false,
        reverted: true,
      };
    }
    const transfers = parseEventLogs({
      abi: eip3009Abi,
      eventName: 'Transfer',
      logs: receipt.logs.filter((log) => isAddressEqual(log.address, asset)),
    });
    const moved = transfers.some(
      (log) => isAddressEqual(log.args.from, auth.from) && isAddressEqual(log.args.to, auth.to) && log.args.value === auth.value,
    );
    if (!moved) {
      // Succeeded without the expected Transfer: something happened on chain that we cannot
      // account for, so it stays pending for a human or a reconciler, never "nothing charged".
      return { success: false, reason: REASON.transferEventMismatch, transaction: hash, maybeOnChain: true };
    }
    return { success: true, transaction: hash, payer: auth.from };
  }

  /** Estimates the settlement (the simulation) and caps it; throws what the estimate throws. */
  async #gasLimit(asset: Address, data: Hex): Promise<GasLimit> {
    const estimate = await this.#client.estimateGas({ account: this.#signer.address, to: asset, data });
    return settlementGasLimit(estimate, this.#maxGas);
  }
}

/** Why a settlement with a `malformed` signature (see `classifySignature`) is refused unsent. */
const MALFORMED_6492_MESSAGE = 'the signature has the ERC-6492 suffix but does not decode as an ERC-6492 wrapper';

/**
 * The calldata of the settlement transaction, or `undefined` when there is none to send: the
 * signature is a malformed ERC-6492 wrapper, which no verification accepts (a settler is not
 * to submit what no verifier accepted, and a contract payer could approve bytes we refused).
 */
function transferData(payment: DecodedPayment): Hex | undefined {
  const call = transferCall(payment.payload.authorization, payment.payload.signature);
  return call === undefined ? undefined : encodeFunctionData({ abi: eip3009Abi, ...call });
}

/** A failure that provably sent nothing: the caller may release the nonce. */
function refused(reason: ExactEvmReason, message?: string): SettleResult {
  return {
    success: false,
    reason,
    ...(message === undefined ? {} : { message: clip(message) }),
    maybeOnChain: false,
  };
}

/**
 * A fault in our words, clipped: results reach logs and receipt rows, and viem's own messages
 * print the endpoint's URL (its API key) and the node's answer (describe-fault.ts).
 */
function describe(err: unknown): string {
  return clip(describeFault(err));
}

const clip = (text: string): string => clipText(text, MAX_MESSAGE_LENGTH);
