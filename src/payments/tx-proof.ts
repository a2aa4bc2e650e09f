/**
 * The seed's proof flow: a caller paid with an ordinary ERC-20 transfer and sends
 * `X-Payment-Proof: <tx hash>` with `X-Payment-Proof-Signature`; the gateway accepts it when the
 * signature is the transaction sender's over the hash and the resource, and the chain shows a
 * successful transaction with a `Transfer` of the option's token to `payTo`, for at least the
 * price, with enough confirmations and not older than the configured age.
 *
 * The signature is what makes the proof the caller's: a hash is public from the moment it is
 * broadcast, so without it whoever presented a payer's hash first was served, and an unrelated
 * transfer to `payTo` bought requests for anyone. A transaction's sender is an account with a key
 * (a contract cannot send one), so an ECDSA signature is the only kind to accept.
 *
 * This only reads the chain. Spending the hash (so one transfer buys one request) is the ledger's
 * `claimProof`, done by the caller after an `ok`.
 */
import {
  erc20Abi,
  hashMessage,
  isAddressEqual,
  parseEventLogs,
  TransactionReceiptNotFoundError,
  type PublicClient,
} from 'viem';
import type { Address, PaymentOption } from '../config/types.js';
import { InfrastructureError } from '../errors.js';
import { proofMessage } from '../protocol/proof-message.js';
import { GATEWAY_REASON } from '../protocol/reasons.js';
import { describeFault } from './chain/describe-fault.js';
import { recoverEcdsaSigner } from './exact-evm/signature.js';
import type { Clock, ProofChecker, TxProof } from './ports.js';

export type TxProofRefusal =
  /** The signature recovers to no address (or to one only by its high-`s` twin). */
  | typeof GATEWAY_REASON.proofSignatureInvalid
  | typeof GATEWAY_REASON.proofTxNotFound
  | typeof GATEWAY_REASON.proofTxFailed
  | typeof GATEWAY_REASON.proofTransferNotFound
  | typeof GATEWAY_REASON.proofAmountTooLow
  | typeof GATEWAY_REASON.proofInsufficientConfirmations
  | typeof GATEWAY_REASON.proofTooOld;

export type TxProofResult =
  | {
      readonly ok: true;
      /** The sender of the accepted `Transfer`. */
      readonly payer: Address;
      /** Its value, atomic units; at least the price. */
      readonly amount: bigint;
      readonly blockNumber: bigint;
    }
  | { readonly ok: false; readonly reason: TxProofRefusal }
  /** The signature is valid but not the transaction sender's: someone else's hash, or another URL's signature. */
  | { readonly ok: false; readonly reason: typeof GATEWAY_REASON.proofSignatureMismatch; readonly signer: Address };

/** The chain reads the checker needs: a viem public client for the option's network. */
export type TxProofClient = Pick<PublicClient, 'getTransactionReceipt' | 'getBlockNumber' | 'getBlock'>;

export interface TxProofCheckerOptions {
  readonly client: TxProofClient;
  readonly clock: Clock;
}

export class TxProofChecker implements ProofChecker {
  readonly #client: TxProofClient;
  readonly #clock: Clock;

  constructor(options: TxProofCheckerOptions) {
    this.#client = options.client;
    this.#clock = options.clock;
  }

  /**
   * Checks one signed transaction hash against one payment option. Refusals are data; an RPC
   * failure throws `InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE')`.
   *
   * The signer is recovered before any chain read and compared with the sender as soon as the
   * receipt is in: a caller presenting someone else's hash learns nothing more and costs one read.
   *
   * Counts one `Transfer` log, not the sum of several: the largest one to `payTo` must cover the
   * price. A batch that pays in pieces is not what the seed's "send USDC, then show the tx" means.
   */
  async check(
    proof: TxProof,
    option: PaymentOption,
    confirmations: number = option.asset.network.proofConfirmations,
    maxAgeSeconds: number = option.asset.network.proofMaxAgeSeconds,
  ): Promise<TxProofResult> {
    const signer = await recoverEcdsaSigner(hashMessage(proofMessage(proof.txHash, proof.resourceUrl)), proof.signature);
    if (signer === undefined) return { ok: false, reason: GATEWAY_REASON.proofSignatureInvalid };
    const receipt = await this.#chain('read the transaction receipt', async () => {
      try {
        return await this.#client.getTransactionReceipt({ hash: proof.txHash });
      } catch (err) {
        if (err instanceof TransactionReceiptNotFoundError) return undefined;
        throw err;
      }
    });
    if (receipt === undefined) return { ok: false, reason: GATEWAY_REASON.proofTxNotFound };
    // A signature over another hash or another URL recovers to some other address, so this one
    // comparison binds the proof to its sender, its transaction and its resource.
    if (!isAddressEqual(receipt.from, signer)) return { ok: false, reason: GATEWAY_REASON.proofSignatureMismatch, signer };
    if (receipt.status !== 'success') return { ok: false, reason: GATEWAY_REASON.proofTxFailed };

    // strict (the default) skips logs that do not decode as ERC-20 Transfer, e.g. ERC-721's
    // same-signature event with the value indexed.
    //
    // Only a transfer the sender of the transaction made from its own balance counts. A relayed
    // transfer (an EIP-3009 settlement, this gateway's own included, or any contract moving a
    // payer's tokens) emits the same Transfer event; counting it would let anyone who reads the
    // chain spend someone else's settlement as their proof, or a payer buy two requests with one.
    const transfers = parseEventLogs({
      abi: erc20Abi,
      eventName: 'Transfer',
      logs: receipt.logs.filter((log) => isAddressEqual(log.address, option.asset.address)),
    }).filter((log) => isAddressEqual(log.args.to, option.payTo) && isAddressEqual(log.args.from, receipt.from));
    let best: (typeof transfers)[number] | undefined;
    for (const log of transfers) if (best === undefined || log.args.value > best.args.value) best = log;
    if (best === undefined) return { ok: false, reason: GATEWAY_REASON.proofTransferNotFound };
    if (best.args.value < option.amount) return { ok: false, reason: GATEWAY_REASON.proofAmountTooLow };

    // cacheTime 0: viem otherwise serves a block number up to one polling interval old.
    const head = await this.#chain('read the block number', () => this.#client.getBlockNumber({ cacheTime: 0 }));
    if (head - receipt.blockNumber + 1n < BigInt(confirmations)) return { ok: false, reason: GATEWAY_REASON.proofInsufficientConfirmations };

    const block = await this.#chain('read the block', () => this.#client.getBlock({ blockNumber: receipt.blockNumber }));
    if (this.#clock.nowSeconds() - block.timestamp > BigInt(maxAgeSeconds)) return { ok: false, reason: GATEWAY_REASON.proofTooOld };

    return { ok: true, payer: best.args.from, amount: best.args.value, blockNumber: receipt.blockNumber };
  }

  async #chain<T>(what: string, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      throw new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `could not ${what}: ${describeFault(err)}`, {
        cause: err,
      });
    }
  }
}
