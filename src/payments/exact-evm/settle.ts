/**
 * Local settlement: the gateway's own key submits the payer's EIP-3009 authorization with
 * `transferWithAuthorization` and waits (bounded) for the receipt. Mirrors `@x402/evm` 2.27
 * `settleEIP3009` (x402-protocol.md §3.3) in its outcomes and reason strings.
 *
 * The one question every failure must answer is `maybeOnChain`: could money have moved? The
 * pipeline is split so that each step knows:
 *
 *   1. estimate gas (this is the simulation: an expired, used, badly signed or unfunded
 *      authorization reverts here) and fees; an estimate
 *      over `settle.maxGas` is refused (gas-limit.ts)   → a failure here sent nothing
 *   2. take a nonce, sign locally, hash                 → the tx hash is known before sending
 *   3. eth_sendRawTransaction, once                     → sent nothing only if the connection
 *                                                        failed or the node refused it outright
 *   4. wait for the receipt, bounded                    → no receipt in time: `settlement_pending`
 *
 * We sign and send ourselves rather than call `writeContract` so that an unclear send (a timeout)
 * still reports the transaction hash, which is what the receipt row and a later reconciliation
 * need. Sends go through their own transport that moves to the next RPC endpoint only when the
 * previous one was never reached, so a send is never repeated to a second node after the first
 * may have accepted it.
 *
 * Nonces come from a `NonceAllocator` shared by every settler of the key on the chain (see
 * nonce-allocator.ts). A send the node refuses for its nonce is retried with a fresh one: the
 * refused transaction provably never entered the mempool.
 *
 * A mined revert costs the settler gas and moves nothing; it is reported `reverted`, and the
 * checkout then keeps the authorization spent and refuses the payer for a while (checkout.ts), so
 * one authorization buys at most one capped attempt.
 *
 * CPU per settlement matters (it bounds a gateway's paid throughput): the transaction is signed
 * by native libsecp256k1 (transaction-signer.ts), and the receipt is asked for directly right
 * after the send, then polled, rather than through viem's block watcher.
 */
import {
  createWalletClient,
  encodeFunctionData,
  isAddressEqual,
  keccak256,
  parseEventLogs,
  TransactionReceiptNotFoundError,
  type Chain,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from 'viem';
import { DEFAULT_SETTLE_MAX_GAS } from '../../config/schema.js';
import type { Address, NetworkConfig, PaymentOption } from '../../config/types.js';
import { InfrastructureError } from '../../errors.js';
import type { DecodedPayment, Eip3009Authorization, Hex } from '../../protocol/types.js';
import { sendTransport, type ChainClient } from '../chain-client.js';
import type { Clock, SettleResult, Settler } from '../ports.js';
import { eip3009Abi } from './abi.js';
import { overCapMessage, settlementGasLimit, type GasLimit } from './gas-limit.js';
import { MinedNonceGate } from './mined-nonce-gate.js';
import { NonceAllocator } from './nonce-allocator.js';
import { REASON, type ExactEvmReason } from '../../protocol/reasons.js';
import { failureText, isContractFailure, NONCE_CONFLICT, neverReachedNode, reasonForTransferFailure, sendRejected } from './rpc-errors.js';
import { classifySignature, splitEcdsa } from './signature.js';
import { createTransactionSigner, type TransactionSigner } from './transaction-signer.js';
import { checkAuthorizationTerms, checkSchemeAndNetwork } from './verify.js';

/** Used when the network's settle config does not say (it always does for `mode: local`). */
export const DEFAULT_RECEIPT_TIMEOUT_MS = 30_000;
/** Sends refused for a stale nonce are retried with a fresh one, this many times in all. */
export const MAX_SEND_ATTEMPTS = 3;
/** How long one fee estimate serves the settlements that follow it. */
export const FEE_CACHE_MS = 1_000;
/** How long to wait for a receipt before checking that the node still has the transaction. */
export const DEFAULT_REBROADCAST_AFTER_MS = 5_000;
/**
 * The first wait between receipt polls; each next one doubles, up to the client's polling
 * interval. A chain that mines on arrival (anvil, some L2 sequencers) usually has the receipt a
 * few milliseconds after the send: waiting a whole interval (100 ms) first was most of a
 * settlement's latency there, while a chain with seconds-long blocks costs only a few extra polls.
 */
export const FIRST_RECEIPT_POLL_MS = 4;
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
  /** See `#awaitReceipt`; DEFAULT_REBROADCAST_AFTER_MS by default. */
  readonly rebroadcastAfterMs?: number;
  /**
   * Shared by every settler of one key on one chain (a reload may build a second one while the
   * first still settles); a fresh one by default.
   */
  readonly nonces?: NonceAllocator;
  /** Where raw transactions go; defaults to the network's endpoints, never-reached-only fallback. */
  readonly sendTransport?: Transport;
}

type Fees =
  | { readonly type: 'eip1559'; readonly maxFeePerGas: bigint; readonly maxPriorityFeePerGas: bigint }
  | { readonly type: 'legacy'; readonly gasPrice: bigint };

/** Settles EIP-3009 payments on one chain with the gateway's own key. */
export class LocalExactEvmSettler implements Settler {
  readonly #network: NetworkConfig;
  readonly #client: ChainClient;
  /** Sends raw transactions only; it holds no account. */
  readonly #wallet: WalletClient<Transport, Chain>;
  readonly #signer: TransactionSigner;
  readonly #nonces: NonceAllocator;
  readonly #mined: MinedNonceGate;
  readonly #clock: Clock;
  readonly #receiptTimeoutMs: number;
  readonly #rebroadcastAfterMs: number;
  readonly #maxGas: bigint;
  #feeCache: { readonly at: number; readonly fees: Promise<Fees> } | undefined;

  constructor(options: LocalExactEvmSettlerOptions) {
    this.#network = options.network;
    this.#client = options.client;
    this.#clock = options.clock;
    this.#signer = createTransactionSigner(options.privateKey);
    this.#nonces = options.nonces ?? new NonceAllocator(() => options.clock.nowMs());
    this.#mined = new MinedNonceGate(() => options.clock.nowMs(), FIRST_RECEIPT_POLL_MS);
    this.#wallet = createWalletClient({
      chain: options.client.chain,
      transport:
        options.sendTransport ??
        sendTransport(options.network),
    });
    const settle = options.network.settle;
    this.#receiptTimeoutMs =
      options.receiptTimeoutMs ?? (settle.mode === 'local' ? settle.receiptTimeoutMs : DEFAULT_RECEIPT_TIMEOUT_MS);
    this.#rebroadcastAfterMs = options.rebroadcastAfterMs ?? DEFAULT_REBROADCAST_AFTER_MS;
    this.#maxGas = options.maxGas ?? BigInt(settle.mode === 'local' ? settle.maxGas : DEFAULT_SETTLE_MAX_GAS);
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
      throw new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `chain ${this.#network.chainId}: eth_estimateGas failed`, { cause: err });
    }
    return limit.kind === 'over_cap' ? { reason: REASON.settlementGasOverLimit, message: overCapMessage(limit) } : undefined;
  }

  async settle(payment: DecodedPayment, option: PaymentOption): Promise<SettleResult> {
    // Set once the raw transaction has left this process; from then on any failure may be on chain.
    const sent: { hash: Hex | undefined } = { hash: undefined };
    try {
      return await this.#settle(payment, option, sent);
    } catch (err) {
      // A bug or an unforeseen fault; the contract says settle never throws. If a nonce was
      // taken and nothing sent, re-read it so later settlements are not stuck behind a gap.
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

  async #settle(payment: DecodedPayment, option: PaymentOption, sent: { hash: Hex | undefined }): Promise<SettleResult> {
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
      const [limit, estimatedFees] = await Promise.all([this.#gasLimit(asset, data), this.#fees()]);
      if (limit.kind === 'over_cap') return refused(REASON.settlementGasOverLimit, overCapMessage(limit));
      gas = limit.gas;
      fees = estimatedFees;
    } catch (err) {
      if (isContractFailure(err)) return refused(reasonForTransferFailure(failureText(err)), failureText(err));
      return refused(REASON.unexpectedSettleError, `chain unavailable before sending: ${describe(err)}`);
    }

    // 2 + 3. Nonce, sign, send.
    const chainId = this.#network.chainId;
    const address = this.#signer.address;
    const readPending = () => this.#client.getTransactionCount({ address, blockTag: 'pending' });
    let ambiguousSend: string | undefined;
    let serialized: Hex;
    let nonce: number;
    for (let attempt = 1; ; attempt++) {
      nonce = await this.#nonces.take(readPending);
      serialized = await this.#signer.sign({ chainId, to: asset, data, gas, nonce, ...fees });
      const hash = keccak256(serialized);
      sent.hash = hash;
      try {
        await this.#wallet.sendRawTransaction({ serializedTransaction: serialized });
        break;
      } catch (err) {
        const text = failureText(err);
        if (!neverReachedNode(err) && !sendRejected(err)) {
          // Timed out, a 5xx, an internal error, or anything unclear: the node may have it. Look for the receipt.
          ambiguousSend = text;
          break;
        }
        sent.hash = undefined;
        // Forget the count: the next take re-reads the pending count from the node.
        this.#nonces.reset();
        if (neverReachedNode(err)) return refused(REASON.unexpectedSettleError, `chain unavailable: ${text}`);
        if (NONCE_CONFLICT.test(text) && attempt < MAX_SEND_ATTEMPTS) continue;
        // The pool refused our transaction (fees, gas, our funds): not the payer's doing.
        return refused(REASON.unexpectedSettleError, `the node refused the settlement transaction: ${text}`);
      }
    }
    const hash = sent.hash;

    // 4. Wait for the receipt, bounded.
    const awaited = await this.#awaitReceipt(hash, serialized, nonce);
    if (!('receipt' in awaited)) {
      if (ambiguousSend !== undefined) {
        // Never seen on chain after an unclear send: it may never have arrived, in which case its
        // nonce is a gap that would stall every later settlement. Re-read the pending nonce.
        this.#nonces.reset();
      }
      const why = `no receipt within ${this.#receiptTimeoutMs} ms${awaited.lastError === undefined ? '' : ` (last poll: ${describe(awaited.lastError)})`}`;
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

  /**
   * The receipt of `hash`, within the receipt timeout: asked for at once (a chain that mines on
   * arrival often has it already), then after FIRST_RECEIPT_POLL_MS, doubling up to the polling
   * interval, each time only if the shared mined count says its `nonce` may be mined. A failed poll is not the end: the
   * money may move regardless, so polling goes on until the deadline.
   *
   * Nodes drop transactions from their pool (seen on anvil, and on real nodes under pressure); a
   * dropped settlement would never be mined and its nonce would stall every later settlement of
   * the key. So each time a slice of the wait passes without a receipt and the node no longer
   * knows the transaction, the same signed bytes are sent again: the same hash and nonce, so it
   * can be mined at most once.
   */
  async #awaitReceipt(hash: Hex, serialized: Hex, nonce: number): Promise<{ receipt: TransactionReceipt } | { lastError: unknown }> {
    const start = this.#clock.nowMs();
    const deadline = start + this.#receiptTimeoutMs;
    let nextRebroadcast = start + this.#rebroadcastAfterMs;
    let lastError: unknown;
    let wait = FIRST_RECEIPT_POLL_MS;
    const address = this.#signer.address;
    const readMinedCount = () => this.#client.getTransactionCount({ address, blockTag: 'latest' });
    for (let poll = 0; ; poll++) {
      if (poll === 0 || (await this.#mined.mayBeMined(nonce, readMinedCount))) {
        try {
          return { receipt: await this.#client.getTransactionReceipt({ hash }) };
        } catch (err) {
          lastError = err instanceof TransactionReceiptNotFoundError ? undefined : err;
        }
      }
      const now = this.#clock.nowMs();
      if (now >= deadline) return { lastError };
      if (now >= nextRebroadcast) {
        nextRebroadcast = now + this.#rebroadcastAfterMs;
        const known = await this.#client.getTransaction({ hash }).then(
          () => true,
          () => false,
        );
        if (!known) await this.#wallet.sendRawTransaction({ serializedTransaction: serialized }).catch(() => undefined);
      }
      await sleep(Math.min(wait, deadline - now));
      wait = Math.min(wait * 2, this.#client.pollingInterval);
    }
  }

  /** Estimates the settlement (the simulation) and caps it; throws what the estimate throws. */
  async #gasLimit(asset: Address, data: Hex): Promise<GasLimit> {
    const estimate = await this.#client.estimateGas({ account: this.#signer.address, to: asset, data });
    return settlementGasLimit(estimate, this.#maxGas);
  }

  /**
   * Fee estimates, shared for FEE_CACHE_MS: concurrent settlements need not each ask for the base
   * fee and tip (two RPC calls), and a fee a second old still clears (maxFeePerGas carries the
   * estimator's headroom over the base fee). A failed estimate is not kept.
   */
  #fees(): Promise<Fees> {
    const now = this.#clock.nowMs();
    if (this.#feeCache && now - this.#feeCache.at < FEE_CACHE_MS) return this.#feeCache.fees;
    const fees = this.#estimateFees();
    this.#feeCache = { at: now, fees };
    fees.catch(() => {
      if (this.#feeCache?.fees === fees) this.#feeCache = undefined;
    });
    return fees;
  }

  /** EIP-1559 fees when the chain has them (every chain x402 pays on today), else a gas price. */
  async #estimateFees(): Promise<Fees> {
    try {
      const fees = await this.#client.estimateFeesPerGas({ type: 'eip1559' });
      return { type: 'eip1559', maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
    } catch (err) {
      if (err instanceof Error && err.name === 'Eip1559FeesNotSupportedError') {
        return { type: 'legacy', gasPrice: await this.#client.getGasPrice() };
      }
      throw err;
    }
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

/** The overload the reference uses: (v, r, s) for a 65-byte ECDSA signature, `bytes` otherwise. */
function transferCall(auth: Eip3009Authorization, signature: Hex) {
  const base = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
  const shape = classifySignature(signature);
  switch (shape.kind) {
    case 'ecdsa': {
      const { v, r, s } = splitEcdsa(shape.signature);
      return { functionName: 'transferWithAuthorization', args: [...base, v, r, s] } as const;
    }
    case 'erc6492':
      // The wallet is deployed (verification refuses counterfactual ones): it checks the inner signature.
      return { functionName: 'transferWithAuthorization', args: [...base, shape.inner] } as const;
    case 'bytes':
      return { functionName: 'transferWithAuthorization', args: [...base, shape.signature] } as const;
    case 'malformed':
      return undefined;
  }
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

function describe(err: unknown): string {
  if (err instanceof Error) {
    const short = 'shortMessage' in err && typeof err.shortMessage === 'string' ? err.shortMessage : err.message;
    return clip(short);
  }
  return clip(String(err));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const clip = (text: string): string => (text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text);
