/**
 * The settlement batcher (batcher.ts) and the reconciler's half of it, on a real chain (the
 * compiled EIP-3009 token at Base's USDC address, our Multicall3 at its canonical address) with a
 * real SQLite ledger: authorizations signed by real keys are queued as `settlement: deferred`
 * queues them, then settled in batches. Balances on chain are the judge.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testActions, type Address, type Hex } from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { DEFAULT_MULTICALL3, DEFAULT_REPLACE_AFTER_SECONDS, DEFAULT_REVERT_PENALTY_SECONDS, DEFAULT_SETTLE_MAX_GAS } from '../../src/config/schema.js';
import type { NetworkConfig } from '../../src/config/types.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { createChainClient, type ChainClient } from '../../src/payments/chain/client.js';
import { DEFERRED_REASON } from '../../src/payments/exact-evm/batch-outcome.js';
import type { BatchReport } from '../../src/payments/exact-evm/batcher.js';
import { LocalExactEvmSettler } from '../../src/payments/exact-evm/settle.js';
import { transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import { systemClock, type DeferredItem, type Ledger } from '../../src/payments/ports.js';
import { ANVIL_DEV_KEYS, createDevChainClient } from '../../src/tools/devchain/anvil.js';
import { MULTICALL3_ADDRESS } from '../../src/tools/devchain/multicall.js';
import { BASE_USDC, mintTestUsdc, TEST_USDC_ABI } from '../../src/tools/devchain/token.js';
import { PAYEE, startChainWorld, type ChainWorld } from '../helpers/chain-world.js';
import { USDC_BASE } from '../helpers/options.js';

const PAYER_INDEXES = [3, 4, 6, 7, 8] as const;
const PAYERS: PrivateKeyAccount[] = PAYER_INDEXES.map((index) => privateKeyToAccount(ANVIL_DEV_KEYS[index]!));
const AMOUNT = 1_000n;
const FUNDS = 1_000_000n;
const CAPS = { perPayer: 10n ** 12n, total: 10n ** 15n };
const SINK: Address = '0x000000000000000000000000000000000000dEaD';

let world: ChainWorld;
let client: ChainClient;
let network: NetworkConfig;
let ledger: Ledger;
let serial = 0;

beforeAll(async () => {
  world = await startChainWorld();
  for (const payer of PAYERS) await mintTestUsdc(world.admin, { token: BASE_USDC, to: payer.address, amount: FUNDS });
  network = {
    name: 'base',
    caip2: 'eip155:8453',
    chainId: 8453,
    v1Name: 'base',
    rpc: [world.chain.rpcUrl],
    verify: 'local',
    settle: {
      mode: 'local',
      privateKey: ANVIL_DEV_KEYS[9],
      receiptTimeoutMs: 10_000,
      maxGas: DEFAULT_SETTLE_MAX_GAS,
      revertPenaltySeconds: DEFAULT_REVERT_PENALTY_SECONDS,
      replaceAfterSeconds: DEFAULT_REPLACE_AFTER_SECONDS,
      minBalanceWei: undefined,
    },
    multicall3: DEFAULT_MULTICALL3,
    proofConfirmations: 1,
    proofMaxAgeSeconds: 3600,
  };
  client = createChainClient(network);
}, 60_000);

afterAll(async () => {
  await world?.stop();
});

beforeEach(() => {
  ledger = new SqliteLedger(':memory:');
});

afterEach(async () => {
  await testActions({ mode: 'anvil' })(world.admin).setAutomine(true);
  await ledger.close();
});

/** Signs an authorization of `payer` and queues it, as a deferred request would. */
async function enqueue(payer: PrivateKeyAccount, options: { validBefore?: bigint } = {}): Promise<DeferredItem> {
  serial += 1;
  const authorization = {
    from: payer.address,
    to: PAYEE,
    value: AMOUNT,
    validAfter: 0n,
    validBefore: options.validBefore ?? 4_000_000_000n,
    nonce: `0x${serial.toString(16).padStart(64, 'e')}` as Hex,
  };
  const signature = await payer.signTypedData(transferWithAuthorizationTypedData(USDC_BASE, authorization));
  const item: DeferredItem = { id: `item-${serial}`, requestId: `req-${serial}`, route: 'GET /cheap', chainId: 8453, asset: BASE_USDC, authorization, signature, queuedAtMs: Date.now() };
  const key = { chainId: 8453, asset: BASE_USDC, payer: payer.address, nonce: authorization.nonce };
  const row = {
    time: Date.now(),
    requestId: item.requestId,
    route: 'GET /cheap',
    method: 'GET',
    path: '/cheap',
    amount: AMOUNT.toString(),
    asset: BASE_USDC,
    network: 'eip155:8453',
    payer: payer.address,
    nonce: authorization.nonce,
    transaction: '',
    status: 'queued' as const,
    reason: '',
  };
  expect(await ledger.enqueueDeferred(key, row, item, CAPS)).toBe(true);
  return item;
}

function settlerOf(key: Hex, receiptTimeoutMs = 10_000): LocalExactEvmSettler {
  return new LocalExactEvmSettler({ network, client, privateKey: key, clock: systemClock, log: ledger, receiptTimeoutMs });
}

function batcherOf(settler: LocalExactEvmSettler, holder = 'replica-a', reports: BatchReport[] = [], failed: string[] = []) {
  const batcher = settler.batcher({
    queue: ledger,
    multicall3: MULTICALL3_ADDRESS,
    holder,
    maxSize: 50,
    maxWaitMs: 1_000,
    maxGas: 10_000_000n,
    marginSeconds: 30,
    onBatch: (report) => reports.push(report),
    onItem: (item, outcome) => {
      if (outcome.state === 'failed') failed.push(`${item.id}:${outcome.reason}`);
    },
    onError: (err) => {
      throw err;
    },
  });
  if (!batcher) throw new Error('a settler with the store has a batcher');
  return batcher;
}

const statuses = async () => new Map((await ledger.receipts({ limit: 10_000 })).map((r) => [r.requestId, r]));

describe('the settlement batcher', () => {
  it('settles 50 queued payments in one transaction: every row settled with its hash, every payer charged once, nothing left owed', async () => {
    const items: DeferredItem[] = [];
    for (let i = 0; i < 50; i++) items.push(await enqueue(PAYERS[i % PAYERS.length]!));
    const settler = settlerOf(ANVIL_DEV_KEYS[9]);
    const reports: BatchReport[] = [];
    const txBefore = await client.getTransactionCount({ address: settler.address });
    const payeeBefore = await world.balance(PAYEE);

    expect(await batcherOf(settler, 'a', reports).flush(Date.now() + 30_000)).toBe(0);

    expect((await client.getTransactionCount({ address: settler.address })) - txBefore).toBe(1);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ size: 50, settled: 50, failed: 0 });
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(50n * AMOUNT);
    const rows = await statuses();
    for (const item of items) {
      expect(rows.get(item.requestId)).toMatchObject({ status: 'settled', transaction: reports[0]!.transaction });
      expect(await ledger.deferredStatus(item.id)).toMatchObject({ state: 'settled', transaction: reports[0]!.transaction });
    }
    const stats = await ledger.queueStats();
    expect(stats.count).toBe(0);
    expect(stats.amounts.get(`8453:${BASE_USDC.toLowerCase()}`)).toBe(0n);
    expect(await ledger.openSettlements(8453, settler.address, 10)).toEqual([]);
  }, 60_000);

  it('a payer who moved its funds before the flush fails alone (bad debt, each item said once); the others in the batch settle', async () => {
    const mover = PAYERS[2]!;
    const items: DeferredItem[] = [];
    for (let i = 0; i < 20; i++) items.push(await enqueue(PAYERS[i % PAYERS.length]!));
    const moverClient = createDevChainClient(world.chain, ANVIL_DEV_KEYS[PAYER_INDEXES[2]]!);
    const moverFunds = await world.balance(mover.address);
    await moverClient.writeContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName: 'transfer', args: [SINK, moverFunds] });
    const payeeBefore = await world.balance(PAYEE);
    const failed: string[] = [];
    const reports: BatchReport[] = [];

    await batcherOf(settlerOf(ANVIL_DEV_KEYS[9]), 'a', reports, failed).flush(Date.now() + 30_000);

    const moverItems = items.filter((item) => item.authorization.from === mover.address);
    expect(failed.sort()).toEqual(moverItems.map((item) => `${item.id}:${DEFERRED_REASON.simulation}`).sort());
    expect(reports).toEqual([expect.objectContaining({ size: 16, settled: 16, failed: 0 })]);
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(16n * AMOUNT);
    expect(await world.balance(mover.address)).toBe(0n);
    const rows = await statuses();
    for (const item of moverItems) expect(rows.get(item.requestId)).toMatchObject({ status: 'settle_failed', reason: DEFERRED_REASON.simulation });
    expect((await ledger.queueStats()).count).toBe(0);
    // Give the mover its funds back for the tests after.
    await mintTestUsdc(world.admin, { token: BASE_USDC, to: mover.address, amount: FUNDS });
  }, 60_000);

  it('an authorization that expires before a batch could land is failed, not sent', async () => {
    const soon = BigInt(Math.floor(Date.now() / 1000) + 10);
    const expiring = await enqueue(PAYERS[0]!, { validBefore: soon });
    const fine = await enqueue(PAYERS[0]!);
    const failed: string[] = [];
    await batcherOf(settlerOf(ANVIL_DEV_KEYS[9]), 'a', [], failed).flush(Date.now() + 30_000);
    expect(failed).toEqual([`${expiring.id}:${DEFERRED_REASON.expired}`]);
    expect(await ledger.deferredStatus(fine.id)).toMatchObject({ state: 'settled' });
  }, 60_000);

  it('waits until a batch is due: below maxSize and younger than maxWaitMs, a tick sends nothing', async () => {
    const item = await enqueue(PAYERS[1]!);
    const batcher = batcherOf(settlerOf(ANVIL_DEV_KEYS[9]));
    await batcher.tick();
    expect(await ledger.deferredStatus(item.id)).toMatchObject({ state: 'queued' });
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    await batcher.tick();
    expect(await ledger.deferredStatus(item.id)).toMatchObject({ state: 'settled' });
  }, 60_000);

  it('one batcher per key across replicas: the lease lets one work, each payment is settled once', async () => {
    const items: DeferredItem[] = [];
    for (let i = 0; i < 10; i++) items.push(await enqueue(PAYERS[i % PAYERS.length]!));
    const key = ANVIL_DEV_KEYS[9];
    const payeeBefore = await world.balance(PAYEE);
    const reportsA: BatchReport[] = [];
    const reportsB: BatchReport[] = [];
    await Promise.all([batcherOf(settlerOf(key), 'replica-a', reportsA).flush(Date.now() + 3_000), batcherOf(settlerOf(key), 'replica-b', reportsB).flush(Date.now() + 3_000)]);
    expect(reportsA.length + reportsB.length).toBe(1);
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(10n * AMOUNT);
  }, 60_000);

  it('a batch whose receipt the batcher never saw (its replica died) is finished item by item by the reconciler', async () => {
    const items: DeferredItem[] = [];
    for (let i = 0; i < 5; i++) items.push(await enqueue(PAYERS[i]!));
    const settler = settlerOf(ANVIL_DEV_KEYS[9], 300);
    await testActions({ mode: 'anvil' })(world.admin).setAutomine(false);
    const payeeBefore = await world.balance(PAYEE);
    await batcherOf(settler).flush(Date.now() + 1_000);
    for (const item of items) expect(await ledger.deferredStatus(item.id)).toMatchObject({ state: 'batched' });
    expect((await statuses()).get(items[0]!.requestId)?.status).toBe('queued');

    await testActions({ mode: 'anvil' })(world.admin).mine({ blocks: 1 });
    await testActions({ mode: 'anvil' })(world.admin).setAutomine(true);
    // Without the queue the reconciler leaves a batch open, never closing it blind.
    const blind = settler.reconciler({ holder: 'replica-b', replaceAfterMs: 60_000 });
    await blind?.tick();
    expect(await ledger.openSettlements(8453, settler.address, 10)).toHaveLength(1);
    const reconciler = settler.reconciler({ holder: 'replica-b', replaceAfterMs: 60_000, queue: ledger });
    await reconciler?.tick();
    for (const item of items) expect(await ledger.deferredStatus(item.id)).toMatchObject({ state: 'settled' });
    const rows = await statuses();
    for (const item of items) expect(rows.get(item.requestId)?.status).toBe('settled');
    expect(await ledger.openSettlements(8453, settler.address, 10)).toEqual([]);
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(5n * AMOUNT);
  }, 60_000);
});
