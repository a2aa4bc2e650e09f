/**
 * The X-Payment-Proof checker against a real chain: plain ERC-20 transfers of TestUsdc at Base's
 * USDC address on anvil (chain id 8453), checked through a viem public client.
 */
import { createPublicClient, http, keccak256, testActions, toHex, type Hash } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANVIL_DEV_KEYS,
  createDevChainClient,
  DEV_CHAIN_POLLING_INTERVAL_MS,
  devChainDefinition,
  startAnvil,
  type DevChain,
  type DevChainClient,
} from '../../src/devchain/anvil.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, TEST_USDC_ABI } from '../../src/devchain/token.js';
import { InfrastructureError } from '../../src/errors.js';
import { systemClock, type Clock } from '../../src/payments/ports.js';
import { TxProofChecker } from '../../src/payments/tx-proof.js';
import { makeOption } from '../helpers/options.js';
import { closedLoopbackUrl } from '../helpers/ports.js';

const [DEPLOYER_KEY, PAYER_KEY, PAY_TO_KEY, STRANGER_KEY] = ANVIL_DEV_KEYS;
const payer = privateKeyToAccount(PAYER_KEY).address;
const payTo = privateKeyToAccount(PAY_TO_KEY).address;
const stranger = privateKeyToAccount(STRANGER_KEY).address;
const PRICE = 10_000n;
const option = makeOption({ payTo, amount: PRICE });
const CONFIRMATIONS = 1;
const MAX_AGE = 3_600;

let chain: DevChain;
let wallet: DevChainClient;
let otherToken: `0x${string}`;
let checker: TxProofChecker;

async function transfer(to: `0x${string}`, amount: bigint, token: `0x${string}` = BASE_USDC): Promise<Hash> {
  const hash = await wallet.writeContract({ address: token, abi: TEST_USDC_ABI, functionName: 'transfer', args: [to, amount] });
  await wallet.waitForTransactionReceipt({ hash });
  return hash;
}

function checkerAt(clock: Clock): TxProofChecker {
  const client = createPublicClient({ chain: devChainDefinition(chain), transport: http(chain.rpcUrl), pollingInterval: DEV_CHAIN_POLLING_INTERVAL_MS });
  return new TxProofChecker({ client, clock });
}

beforeAll(async () => {
  chain = await startAnvil({ chainId: 8453 });
  const deployer = createDevChainClient(chain, DEPLOYER_KEY);
  await installTestUsdc(deployer, { at: BASE_USDC });
  otherToken = await installTestUsdc(deployer);
  await mintTestUsdc(deployer, { token: BASE_USDC, to: payer, amount: 1_000_000n });
  await mintTestUsdc(deployer, { token: otherToken, to: payer, amount: 1_000_000n });
  wallet = createDevChainClient(chain, PAYER_KEY);
  checker = checkerAt(systemClock);
});

afterAll(async () => {
  await chain?.stop();
});

describe('TxProofChecker', () => {
  it('accepts a plain transfer of the price to payTo', async () => {
    const hash = await transfer(payTo, PRICE);
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer, amount: PRICE });
  });

  it('accepts more than the price and reports what was paid', async () => {
    const hash = await transfer(payTo, PRICE * 3n);
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer, amount: PRICE * 3n });
  });

  it('refuses too little', async () => {
    const hash = await transfer(payTo, PRICE - 1n);
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_amount_too_low' });
  });

  it('refuses a transfer to someone else', async () => {
    const hash = await transfer(stranger, PRICE);
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
  });

  it('refuses a transfer of another token, even with the same name and to payTo', async () => {
    const hash = await transfer(payTo, PRICE, otherToken);
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
  });

  it('refuses a transaction with no transfer at all', async () => {
    const hash = await wallet.sendTransaction({ to: payTo, value: 1n });
    await wallet.waitForTransactionReceipt({ hash });
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
  });

  it('refuses a reverted transaction', async () => {
    // An explicit gas limit skips estimation, which would refuse to send a transfer beyond the balance.
    const hash = await wallet.writeContract({
      address: BASE_USDC,
      abi: TEST_USDC_ABI,
      functionName: 'transfer',
      args: [payTo, 10n ** 18n],
      gas: 100_000n,
    });
    const receipt = await wallet.waitForTransactionReceipt({ hash });
    expect(receipt.status).toBe('reverted');
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_tx_failed' });
  });

  it('refuses an unknown hash', async () => {
    const hash = keccak256(toHex('never sent'));
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_tx_not_found' });
  });

  it('waits for confirmations: the block of the tx counts as the first', async () => {
    const hash = await transfer(payTo, PRICE);
    expect(await checker.check(hash, option, 3, MAX_AGE)).toEqual({ ok: false, reason: 'proof_insufficient_confirmations' });
    await testActions({ mode: 'anvil' })(wallet).mine({ blocks: 1 });
    expect(await checker.check(hash, option, 3, MAX_AGE)).toEqual({ ok: false, reason: 'proof_insufficient_confirmations' });
    await testActions({ mode: 'anvil' })(wallet).mine({ blocks: 1 });
    expect(await checker.check(hash, option, 3, MAX_AGE)).toMatchObject({ ok: true });
  });

  it('refuses a transfer older than the maximum age, by the injected clock', async () => {
    const hash = await transfer(payTo, PRICE);
    const later: Clock = {
      nowSeconds: () => systemClock.nowSeconds() + BigInt(MAX_AGE) + 60n,
      nowMs: () => systemClock.nowMs() + (MAX_AGE + 60) * 1000,
    };
    expect(await checkerAt(later).check(hash, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_too_old' });
    expect(await checker.check(hash, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true });
  });

  it('throws GW_ERR_CHAIN_UNAVAILABLE when the RPC is down', async () => {
    const hash = await transfer(payTo, PRICE);
    const dead = createPublicClient({ transport: http(await closedLoopbackUrl(), { retryCount: 0 }) });
    const err = await new TxProofChecker({ client: dead, clock: systemClock }).check(hash, option, CONFIRMATIONS, MAX_AGE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfrastructureError);
    expect(err).toMatchObject({ code: 'GW_ERR_CHAIN_UNAVAILABLE' });
  });
});
