/**
 * The seed's proof flow: a caller paid with an ordinary ERC-20 transfer and sends
 * `X-Payment-Proof: <tx hash>`; the gateway accepts it when the chain shows a successful
 * transaction with a `Transfer` of the option's token to `payTo`, for at least the price, with
 * enough confirmations and not older than the configured age.
 *
 * This only reads the chain. Spending the hash (so one transfer buys one request) is the ledger's
 * `claimProof`, done by the caller after an `ok`.
 */
import {
  erc20Abi,
  isAddressEqual,
  parseEventLogs,
  TransactionReceiptNotFoundError,
  type PublicClient,
} from 'viem';
import type { Address, PaymentOption } from '../config/types.js';
import { InfrastructureError } from '../errors.js';
import type { Hex } from '../protocol/types.js';
import type { Clock, ProofChecker } from './ports.js';

export type TxProofRefusal =
  | 'proof_tx_not_found'
  | 'proof_tx_failed'
  | 'proof_transfer_not_found'
  | 'proof_amount_too_low'
  | 'proof_insufficient_confirmations'
  | 'proof_too_old';

export type TxProofResult =
  | {
      readonly ok: true;
      /** The sender of the accepted `Transfer`. */
      readonly payer: Address;
      /** Its value, atomic units; at least the price. */
      readonly amount: bigint;
      readonly blockNumber: bigint;
    }
  | { readonly ok: false; readonly reason: TxProofRefusal };

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
   * Checks one transaction hash against one payment option. Refusals are data; an RPC failure
   * throws `InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE')`.
   *
   * Counts one `Transfer` log, not the sum of several: the largest one to `payTo` must cover the
   * price. A batch that pays in pieces is not what the seed's "send USDC, then show the tx" means.
   */
  async check(
    txHash: Hex,
    option: PaymentOption,
    confirmations: number = option.asset.network.proofConfirmations,
    maxAgeSeconds: number = option.asset.network.proofMaxAgeSeconds,
  ): Promise<TxProofResult> {
    const receipt = await this.#chain('read the transaction receipt', async () => {
      try {
        return await this.#client.getTransactionReceipt({ hash: txHash });
      } catch (err) {
        if (err instanceof TransactionReceiptNotFoundError) return undefined;
        throw err;
      }
    });
    if (receipt === undefined) return { ok: false, reason: 'proof_tx_not_found' };
    if (receipt.status !== 'success') return { ok: false, reason: 'proof_tx_failed' };

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
    if (best === undefined) return { ok: false, reason: 'proof_transfer_not_found' };
    if (best.args.value < option.amount) return { ok: false, reason: 'proof_amount_too_low' };

    // cacheTime 0: viem otherwise serves a block number up to one polling interval old.
    const head = await this.#chain('read the block number', () => this.#client.getBlockNumber({ cacheTime: 0 }));
    if (head - receipt.blockNumber + 1n < BigInt(confirmations)) return { ok: false, reason: 'proof_insufficient_confirmations' };

    const block = await this.#chain('read the block', () => this.#client.getBlock({ blockNumber: receipt.blockNumber }));
    if (this.#clock.nowSeconds() - block.timestamp > BigInt(maxAgeSeconds)) return { ok: false, reason: 'proof_too_old' };

    return { ok: true, payer: best.args.from, amount: best.args.value, blockNumber: receipt.blockNumber };
  }

  async #chain<T>(what: string, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      throw new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', `could not ${what}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }
}
