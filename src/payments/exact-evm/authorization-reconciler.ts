/**
 * The reconciler of `pending` rows that no settlement log follows: payments settled through a
 * facilitator that may have received the settlement without saying it landed (a timeout, a reset,
 * a 5xx, `settlement_pending` twice). The gateway signed no transaction of its own there, so it
 * asks the chain about the row's authorization instead. One runs per chain with such a network
 * on every replica; the store's lease lets one at a time work.
 *
 * For each pending row of its network older than GRACE_MS:
 *
 *   - the row names a transaction (a facilitator's `settlement_pending` answer) whose receipt has
 *     the token's `AuthorizationUsed(payer, nonce)`: `settled`, with that transaction;
 *   - the token says the authorization is used: its `AuthorizationUsed` log is looked for in the
 *     blocks from the row's time to its `validBefore` (it cannot be used outside them). Found:
 *     `settled` with its transaction (an EIP-3009 authorization moves the signed amount to the
 *     signed recipient, whoever submits it). Not found (the payer cancelled it): left `pending`,
 *     and said in the log, for an operator to look at;
 *   - unused, and the chain's newest block is FINALITY_MARGIN_SECONDS past `validBefore`: it can
 *     never be used, so `settle_failed` (`authorization_expired_unsettled`): nothing was charged;
 *   - unused and still valid: left for a later pass (a facilitator may still submit it).
 *
 * Outcomes are written with `record`, which leaves a row another path finished first alone, so
 * the settling request, this and any other reconciler count each outcome once.
 */
import { TransactionReceiptNotFoundError, type Block } from 'viem';
import { GATEWAY_REASON } from '../../protocol/reasons.js';
import type { Address, Hex } from '../../protocol/types.js';
import { isTxHash } from '../../protocol/types.js';
import type { ChainClient } from '../chain/client.js';
import { PeriodicTask } from '../periodic-task.js';
import type { Clock, Ledger, PendingReceipt, ReceiptStatus, SettlementLog } from '../ports.js';
import { authorizationUsedEvent, authorizationUsedIn, eip3009Abi } from './abi.js';
import { LEASE_TTL_MS } from './reconciler.js';

/** How often it looks, by default. */
export const DEFAULT_AUTHORIZATION_RECONCILE_INTERVAL_MS = 3_000;
/** A row younger than this is left to the request that wrote it, which may still be waiting. */
export const GRACE_MS = 5_000;
/** How far past `validBefore` the newest block must be before an unused authorization is final (a short reorg could still include it). */
export const FINALITY_MARGIN_SECONDS = 120n;
/** How long before a row's time its settlement may have been mined (the clocks of the gateway and the chain differ). */
const CLOCK_SLACK_SECONDS = 120n;
/** Rows looked at per pass. */
const BATCH = 100;
/** The most blocks one `eth_getLogs` asks for; providers refuse wider ranges. */
const MAX_LOG_BLOCKS = 5_000n;

/** What a pass decided for a row. */
export type AuthorizationOutcome =
  | { readonly status: 'settled'; readonly transaction: Hex }
  | { readonly status: 'settle_failed'; readonly reason: string };

export interface AuthorizationReconcilerOptions {
  readonly ledger: Pick<Ledger, 'pendingRows' | 'record'> & Pick<SettlementLog, 'holdLease'>;
  readonly client: ChainClient;
  /** The rows' network, CAIP-2 (`eip155:8453`). */
  readonly network: string;
  readonly clock: Clock;
  /** This replica, as the lease names its holder. */
  readonly holder: string;
  readonly intervalMs?: number;
  /** A row this pass finished (and only this pass: it wrote the outcome). */
  readonly onOutcome?: (row: PendingReceipt, outcome: AuthorizationOutcome) => void;
  /** A row whose authorization is used on chain without an `AuthorizationUsed` log in its window. */
  readonly onUnexplained?: (row: PendingReceipt) => void;
  readonly onError?: (err: unknown) => void;
}

export class AuthorizationReconciler {
  readonly #o: AuthorizationReconcilerOptions;
  readonly #task: PeriodicTask;
  readonly #lease: string;

  constructor(options: AuthorizationReconcilerOptions) {
    this.#o = options;
    this.#lease = `authorizations:${options.network}`;
    this.#task = new PeriodicTask(() => this.#pass(), options.intervalMs ?? DEFAULT_AUTHORIZATION_RECONCILE_INTERVAL_MS, (err) => options.onError?.(err));
  }

  start(): void {
    this.#task.start();
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** One pass now, unless one is running. Never rejects. */
  tick(): Promise<void> {
    return this.#task.pass();
  }

  async #pass(): Promise<void> {
    const { ledger, client, clock } = this.#o;
    const rows = await ledger.pendingRows(this.#o.network, clock.nowMs() - GRACE_MS, BATCH);
    if (rows.length === 0) return;
    if (!(await ledger.holdLease(this.#lease, this.#o.holder, LEASE_TTL_MS))) return;
    // An RPC that is down fails here, once per pass, before any row is asked about.
    const latest = await client.getBlock({ blockTag: 'latest' });
    // A row the chain cannot answer for must not hold up the rows after it: it is tried again next
    // pass, and the pass reports its first such error once.
    let rowError: unknown;
    for (const row of rows) {
      const outcome = await this.#decide(row, latest).catch((err: unknown) => {
        rowError ??= err;
        return undefined;
      });
      if (outcome === undefined) continue;
      const { validBeforeSeconds: _, ...receipt } = row;
      const status: ReceiptStatus = outcome.status;
      const written = await ledger.record({
        ...receipt,
        status,
        transaction: outcome.status === 'settled' ? outcome.transaction : receipt.transaction,
        reason: outcome.status === 'settled' ? GATEWAY_REASON.reconciled : outcome.reason,
        time: clock.nowMs(),
      });
      if (written) this.#o.onOutcome?.(row, outcome);
    }
    if (rowError !== undefined) this.#o.onError?.(rowError);
  }

  async #decide(row: PendingReceipt, latest: Block<bigint, false, 'latest'>): Promise<AuthorizationOutcome | undefined> {
    const asset = row.asset as Address;
    const payer = row.payer as Address;
    const nonce = row.nonce as Hex;
    if (isTxHash(row.transaction)) {
      const named = await this.#usedIn(row.transaction, asset, payer, nonce);
      if (named) return { status: 'settled', transaction: row.transaction };
    }
    const used = await this.#o.client.readContract({ address: asset, abi: eip3009Abi, functionName: 'authorizationState', args: [payer, nonce] });
    const validBefore = row.validBeforeSeconds === undefined ? undefined : BigInt(row.validBeforeSeconds);
    if (!used) {
      if (validBefore !== undefined && latest.timestamp >= validBefore + FINALITY_MARGIN_SECONDS) {
        return { status: 'settle_failed', reason: GATEWAY_REASON.authorizationExpiredUnsettled };
      }
      return undefined;
    }
    const found = await this.#findUse(row, latest, validBefore);
    if (found !== undefined) return { status: 'settled', transaction: found };
    this.#o.onUnexplained?.(row);
    return undefined;
  }

  /** Whether transaction `hash` was mined with the token's AuthorizationUsed(payer, nonce). */
  async #usedIn(hash: Hex, asset: Address, payer: Address, nonce: Hex): Promise<boolean> {
    try {
      const receipt = await this.#o.client.getTransactionReceipt({ hash });
      return authorizationUsedIn(receipt.logs, asset, payer, nonce);
    } catch (err) {
      if (err instanceof TransactionReceiptNotFoundError) return false;
      throw err;
    }
  }

  /** The transaction that used the row's authorization, from the token's logs in the blocks it could be mined in. */
  async #findUse(row: PendingReceipt, latest: Block<bigint, false, 'latest'>, validBefore: bigint | undefined): Promise<Hex | undefined> {
    const client = this.#o.client;
    const from = await firstBlockAtOrAfter(client, BigInt(Math.floor(row.time / 1000)) - CLOCK_SLACK_SECONDS, latest, 0n);
    const to = validBefore === undefined ? latest.number : min(latest.number, await firstBlockAtOrAfter(client, validBefore, latest, from));
    for (let start = from; start <= to; start += MAX_LOG_BLOCKS) {
      const logs = await client.getLogs({
        address: row.asset as Address,
        event: authorizationUsedEvent,
        args: { authorizer: row.payer as Address, nonce: row.nonce as Hex },
        fromBlock: start,
        toBlock: min(to, start + MAX_LOG_BLOCKS - 1n),
      });
      const log = logs[0];
      if (log?.transactionHash) return log.transactionHash;
    }
    return undefined;
  }
}

/**
 * The number of the first block from `lowest` on whose timestamp is at least `seconds` (latest + 1
 * when none is yet): a binary search.
 */
async function firstBlockAtOrAfter(client: ChainClient, seconds: bigint, latest: Block<bigint, false, 'latest'>, lowest: bigint): Promise<bigint> {
  if (latest.timestamp < seconds) return latest.number + 1n;
  let lo = lowest;
  let hi = latest.number;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    const block = await client.getBlock({ blockNumber: mid });
    if (block.timestamp < seconds) lo = mid + 1n;
    else hi = mid;
  }
  return lo;
}

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
