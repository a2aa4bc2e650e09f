/**
 * What the `settlement: deferred` e2e files share: a network settled with a key of its own (the
 * chain world's admin key mints, and must never race a gateway for transaction nonces, and the
 * settler's transaction count is then the batches alone), funded payers beyond the chain world's
 * one, and readers for a receipt header, a settlement status URL and an admin /metrics series.
 */
import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, mintTestUsdc } from '../../src/tools/devchain/token.js';
import type { ChainWorld } from './chain-world.js';
import { decodeHeader, send } from './http.js';

/** Settles the deferred routes of these files: used by nothing else on the chain. */
export const BATCH_SETTLER_KEY = ANVIL_DEV_KEYS[9];
export const BATCH_SETTLER: Address = privateKeyToAccount(BATCH_SETTLER_KEY).address;

/** Payers with ETH and no other role in the chain world (0 settles for it, 1 is its payer, 2 its payee, 5 stays unfunded). */
export const EXTRA_PAYER_KEYS: readonly Hex[] = [ANVIL_DEV_KEYS[3], ANVIL_DEV_KEYS[4], ANVIL_DEV_KEYS[6], ANVIL_DEV_KEYS[7], ANVIL_DEV_KEYS[8]];

/** Where a payer that empties its wallet sends the money. */
export const SINK: Address = '0x000000000000000000000000000000000000dEaD';

/** "$0.001" in USDC's atomic units: the price of every deferred route in these files. */
export const MILLI = 1_000n;

/** Network `base` on `rpcUrl`, settled locally by BATCH_SETTLER_KEY, with `settle.batch` set to `batch` (YAML flow keys). */
export function deferredBase(rpcUrl: string, batch: string): string {
  return `base: { network: "eip155:8453", rpc: "${rpcUrl}", settle: { mode: local, privateKey: "${BATCH_SETTLER_KEY}", batch: { ${batch} } } }`;
}

/** Mints each of `keys`' addresses `amount` of the test USDC. */
export async function fundPayers(world: ChainWorld, keys: readonly Hex[], amount: bigint): Promise<void> {
  for (const key of keys) await mintTestUsdc(world.admin, { token: BASE_USDC, to: privateKeyToAccount(key).address, amount });
}

/** How many transactions BATCH_SETTLER has had mined. */
export function settlerTransactions(world: ChainWorld): Promise<number> {
  return world.admin.getTransactionCount({ address: BATCH_SETTLER });
}

/** A receipt header (`PAYMENT-RESPONSE`), as the gateway writes it for `settlement: deferred`. */
export interface PaymentReceipt {
  readonly success: boolean;
  /** '' while queued; the hash of a settlement made at once. */
  readonly transaction: string;
  readonly payer: string;
  readonly extra?: { readonly settlement: string; readonly id: string; readonly status: string };
}

/** The decoded `PAYMENT-RESPONSE` of a fetch answer. */
export function receiptOf(res: Response): PaymentReceipt {
  return decodeHeader(res.headers.get('payment-response') ?? undefined) as PaymentReceipt;
}

/** The status URL of a queued payment's receipt (and fails the test when it was not queued). */
export function statusUrlOf(receipt: PaymentReceipt): string {
  if (receipt.extra === undefined) throw new Error(`not a queued receipt: ${JSON.stringify(receipt)}`);
  return receipt.extra.status;
}

export interface SettlementStatus {
  readonly id: string;
  readonly status: 'queued' | 'settled' | 'failed';
  readonly transaction?: string;
  readonly reason?: string;
}

/** `GET` of a settlement status URL; `base` replaces its origin (a restarted process listens elsewhere). */
export async function settlementStatus(url: string, base?: string): Promise<SettlementStatus> {
  const target = new URL(url);
  const res = await send(base ?? target.origin, 'GET', target.pathname);
  if (res.status !== 200) throw new Error(`status ${res.status} from ${url}`);
  return res.json() as SettlementStatus;
}

/** The statuses of all of `urls`, once none says `queued` (within `timeoutMs`). */
export async function finalStatuses(urls: readonly string[], timeoutMs: number, base?: string): Promise<SettlementStatus[]> {
  const started = Date.now();
  for (;;) {
    const statuses = await Promise.all(urls.map((url) => settlementStatus(url, base).catch(() => undefined)));
    if (statuses.every((s) => s !== undefined && s.status !== 'queued')) return statuses as SettlementStatus[];
    if (Date.now() - started > timeoutMs) throw new Error(`settlements still queued after ${timeoutMs} ms: ${JSON.stringify(statuses.map((s) => s?.status))}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A metric series' value on an admin listener's /metrics (0 when the series is absent). */
export async function metricValue(adminUrl: string, series: string): Promise<number> {
  const text = (await send(adminUrl, 'GET', '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1) ?? 0);
}

/** The bad debt series of the files' route `GET /cheap`. */
export const BAD_DEBT_CHEAP = 'x402_gateway_deferred_bad_debt_atomic_total{route="GET /cheap",asset="usdc@base",network="eip155:8453"}';
