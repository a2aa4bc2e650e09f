/**
 * Batched settlement's calldata and outcome reading (batch-calls.ts) on a real chain: the
 * compiled EIP-3009 token at Base's USDC address and our Multicall3 at its canonical address.
 * Fifty authorizations from five payers go in one `aggregate3` transaction; one payer moves its
 * funds away first, so its calls fail inside the batch while the others settle. Balances on
 * chain are the judge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFunctionData, toEventSelector, type Address, type Hex } from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { batchCalldata, batchOutcomes, planBatches, simulatedSuccesses, type BatchItem } from '../../src/payments/exact-evm/batch-calls.js';
import { eip3009Abi, transferCall } from '../../src/payments/exact-evm/abi.js';
import { transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import { ANVIL_DEV_KEYS, createDevChainClient } from '../../src/tools/devchain/anvil.js';
import { MULTICALL3_ADDRESS } from '../../src/tools/devchain/multicall.js';
import { BASE_USDC, mintTestUsdc, TEST_USDC_ABI } from '../../src/tools/devchain/token.js';
import { PAYEE, startChainWorld, type ChainWorld } from '../helpers/chain-world.js';
import { USDC_BASE } from '../helpers/options.js';

const PAYERS: PrivateKeyAccount[] = [3, 4, 6, 7, 8].map((index) => privateKeyToAccount(ANVIL_DEV_KEYS[index]!));
const PER_PAYER = 10;
const AMOUNT = 1_000n; // $0.001
const SINK: Address = '0x000000000000000000000000000000000000dEaD';

let world: ChainWorld;
let serial = 0;

beforeAll(async () => {
  world = await startChainWorld();
  for (const payer of PAYERS) await mintTestUsdc(world.admin, { token: BASE_USDC, to: payer.address, amount: 1_000_000n });
}, 60_000);

afterAll(async () => {
  await world?.stop();
});

async function signedItem(payer: PrivateKeyAccount, value = AMOUNT): Promise<BatchItem> {
  serial += 1;
  const authorization = {
    from: payer.address,
    to: PAYEE,
    value,
    validAfter: 0n,
    validBefore: 4_000_000_000n,
    nonce: `0x${serial.toString(16).padStart(64, '0')}` as Hex,
  };
  const signature = await payer.signTypedData(transferWithAuthorizationTypedData(USDC_BASE, authorization));
  return { id: `item-${serial}`, asset: BASE_USDC, authorization, signature };
}

async function sendBatch(items: readonly BatchItem[]) {
  const hash = await world.admin.sendTransaction({ to: MULTICALL3_ADDRESS, data: batchCalldata(items), gas: 8_000_000n });
  return world.admin.waitForTransactionReceipt({ hash });
}

describe('one aggregate3 transaction settles many authorizations', () => {
  it('settles every item but those of a payer whose funds moved, and says so item by item', async () => {
    const items: BatchItem[] = [];
    for (const payer of PAYERS) for (let i = 0; i < PER_PAYER; i++) items.push(await signedItem(payer));
    const mover = PAYERS[2]!;
    // Between verification and the batch, one payer moves everything away.
    const moverClient = createDevChainClient(world.chain, ANVIL_DEV_KEYS[6]!);
    await moverClient.writeContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName: 'transfer', args: [SINK, 1_000_000n] });

    const simulated = await world.admin.call({ to: MULTICALL3_ADDRESS, data: batchCalldata(items) });
    const successes = simulatedSuccesses(simulated.data!);
    expect(successes).toEqual(items.map((item) => item.authorization.from !== mover.address));

    const payeeBefore = await world.balance(PAYEE);
    const balancesBefore = await Promise.all(PAYERS.map((p) => world.balance(p.address)));
    const receipt = await sendBatch(items);
    expect(receipt.status).toBe('success');

    const outcomes = batchOutcomes(items, receipt.logs);
    for (const item of items) expect(outcomes.get(item.id)).toBe(item.authorization.from === mover.address ? 'failed' : 'settled');
    const settled = items.filter((item) => outcomes.get(item.id) === 'settled').length;
    expect(settled).toBe((PAYERS.length - 1) * PER_PAYER);

    // On chain: the payee got exactly the settled items, each payer paid for its own, the mover nothing.
    expect((await world.balance(PAYEE)) - payeeBefore).toBe(BigInt(settled) * AMOUNT);
    for (const [index, payer] of PAYERS.entries()) {
      const paid = balancesBefore[index]! - (await world.balance(payer.address));
      expect(paid).toBe(payer.address === mover.address ? 0n : BigInt(PER_PAYER) * AMOUNT);
    }
    // The failed items' nonces are unused: they could still be settled once funded.
    const state = await world.admin.readContract({ address: BASE_USDC, abi: eip3009Abi, functionName: 'authorizationState', args: [mover.address, items.find((i) => i.authorization.from === mover.address)!.authorization.nonce] });
    expect(state).toBe(false);
  }, 60_000);

  it('costs less gas per payment than one transaction per payment', async () => {
    const single = await signedItem(PAYERS[0]!);
    const call = transferCall(single.authorization, single.signature)!;
    const hash = await world.admin.sendTransaction({ to: BASE_USDC, data: encodeFunctionData({ abi: eip3009Abi, ...call }) });
    const alone = await world.admin.waitForTransactionReceipt({ hash });
    expect(alone.status).toBe('success');

    const items: BatchItem[] = [];
    for (let i = 0; i < 50; i++) items.push(await signedItem(PAYERS[i % 2]!));
    const batch = await sendBatch(items);
    const outcomes = batchOutcomes(items, batch.logs);
    expect([...outcomes.values()].every((outcome) => outcome === 'settled')).toBe(true);
    const perPayment = batch.gasUsed / 50n;
    // Measured, reported: the per-transaction 21,000 and calldata overhead are shared.
    console.info(`gas: one transaction per payment ${alone.gasUsed}, batch of 50 ${batch.gasUsed} (${perPayment} per payment, ${Number((perPayment * 1000n) / alone.gasUsed) / 1000}x)`);
    expect(perPayment).toBeLessThan(alone.gasUsed);
  }, 60_000);

  it('reads a used authorization without its transfer as a mismatch, never as settled or failed', async () => {
    const item = await signedItem(PAYERS[1]!);
    const receipt = await sendBatch([item]);
    const logs = receipt.logs;
    expect(batchOutcomes([item], logs).get(item.id)).toBe('settled');
    // The same logs without the Transfer: what a token that logs the use and moves something else would leave.
    const withoutTransfer = logs.filter((log) => log.topics[0] !== toEventSelector('Transfer(address,address,uint256)'));
    expect(batchOutcomes([item], withoutTransfer).get(item.id)).toBe('mismatch');
    // Another token's events never count for this item.
    const elsewhere = logs.map((log) => ({ ...log, address: SINK }));
    expect(batchOutcomes([item], elsewhere).get(item.id)).toBe('failed');
  }, 60_000);
});

describe('planBatches', () => {
  const limits = { maxSize: 50, maxGas: 3_000_000n, baseGas: 30_000n, gasPerItem: 60_000n };
  it('keeps each batch within the size and the gas limit, in order, and never drops an item', () => {
    const items = Array.from({ length: 123 }, (_, i) => i);
    const batches = planBatches(items, limits);
    expect(batches.flat()).toEqual(items);
    for (const batch of batches) {
      expect(batch.length).toBeLessThanOrEqual(limits.maxSize);
      expect(limits.baseGas + BigInt(batch.length) * limits.gasPerItem).toBeLessThanOrEqual(limits.maxGas);
    }
    expect(planBatches(items, { ...limits, maxGas: 10_000_000n }).map((b) => b.length)).toEqual([50, 50, 23]);
  });
  it('puts one item in a batch when even one is over the gas limit', () => {
    expect(planBatches([1, 2], { ...limits, maxGas: 40_000n })).toEqual([[1], [2]]);
    expect(planBatches([], limits)).toEqual([]);
  });
});
