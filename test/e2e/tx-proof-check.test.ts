/**
 * The X-Payment-Proof checker against a real chain: plain ERC-20 transfers of TestUsdc at Base's
 * USDC address on anvil (chain id 8453), checked through a viem public client, each presented
 * with its sender's EIP-191 signature over the hash and the resource URL.
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
} from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, TEST_USDC_ABI } from '../../src/tools/devchain/token.js';
import { InfrastructureError } from '../../src/errors.js';
import { systemClock, type Clock } from '../../src/payments/ports.js';
import { TxProofChecker } from '../../src/payments/tx-proof.js';
import { proofMessage } from '../../src/protocol/proof-message.js';
import type { Hex } from '../../src/protocol/types.js';
import { realClock } from '../helpers/clock.js';
import { makeOption } from '../helpers/options.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';

const [DEPLOYER_KEY, PAYER_KEY, PAY_TO_KEY, STRANGER_KEY] = ANVIL_DEV_KEYS;
const payer = privateKeyToAccount(PAYER_KEY).address;
const payTo = privateKeyToAccount(PAY_TO_KEY).address;
const stranger = privateKeyToAccount(STRANGER_KEY).address;
const PRICE = 10_000n;
const option = makeOption({ payTo, amount: PRICE });
const CONFIRMATIONS = 1;
const MAX_AGE = 3_600;
const RESOURCE = 'https://gw.example.com/report?day=1';
/** secp256k1's group order: s and n - s are twin signatures of one message. */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** A proof of `hash` for RESOURCE, signed by `key` (by default the payer, who sends every transfer here) over the message for `url`. */
async function signed(hash: Hash, key: Hex = PAYER_KEY, url = RESOURCE): Promise<{ txHash: Hash; signature: Hex; resourceUrl: string }> {
  const signature = await privateKeyToAccount(key).signMessage({ message: proofMessage(hash, url) });
  return { txHash: hash, signature, resourceUrl: RESOURCE };
}

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
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer, amount: PRICE });
  });

  it('accepts more than the price and reports what was paid', async () => {
    const hash = await transfer(payTo, PRICE * 3n);
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer, amount: PRICE * 3n });
  });

  it('refuses too little', async () => {
    const hash = await transfer(payTo, PRICE - 1n);
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_amount_too_low' });
  });

  it('refuses a transfer to someone else', async () => {
    const hash = await transfer(stranger, PRICE);
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
  });

  it('refuses a transfer of another token, even with the same name and to payTo', async () => {
    const hash = await transfer(payTo, PRICE, otherToken);
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
  });

  it('refuses a transaction with no transfer at all', async () => {
    const hash = await wallet.sendTransaction({ to: payTo, value: 1n });
    await wallet.waitForTransactionReceipt({ hash });
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_transfer_not_found' });
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
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_tx_failed' });
  });

  it('refuses an unknown hash', async () => {
    const hash = keccak256(toHex('never sent'));
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_tx_not_found' });
  });

  it('waits for confirmations: the block of the tx counts as the first', async () => {
    const hash = await transfer(payTo, PRICE);
    expect(await checker.check(await signed(hash), option, 3, MAX_AGE)).toEqual({ ok: false, reason: 'proof_insufficient_confirmations' });
    await testActions({ mode: 'anvil' })(wallet).mine({ blocks: 1 });
    expect(await checker.check(await signed(hash), option, 3, MAX_AGE)).toEqual({ ok: false, reason: 'proof_insufficient_confirmations' });
    await testActions({ mode: 'anvil' })(wallet).mine({ blocks: 1 });
    expect(await checker.check(await signed(hash), option, 3, MAX_AGE)).toMatchObject({ ok: true });
  });

  it('refuses a transfer older than the maximum age, by the injected clock', async () => {
    const hash = await transfer(payTo, PRICE);
    const later = realClock(MAX_AGE + 60);
    expect(await checkerAt(later).check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_too_old' });
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true });
  });

  it('refuses the hash of a transfer someone else sent, signed by the caller: proof_signature_mismatch', async () => {
    const hash = await transfer(payTo, PRICE * 50n);
    expect(await checker.check(await signed(hash, STRANGER_KEY), option, CONFIRMATIONS, MAX_AGE)).toEqual({
      ok: false,
      reason: 'proof_signature_mismatch',
      signer: stranger,
    });
    expect(await checker.check(await signed(hash), option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer });
  });

  it("refuses the sender's own signature over another resource URL, or over another transaction", async () => {
    const hash = await transfer(payTo, PRICE);
    const other = await transfer(payTo, PRICE);
    const otherUrl = await signed(hash, PAYER_KEY, 'https://gw.example.com/report?day=2');
    expect(await checker.check(otherUrl, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: false, reason: 'proof_signature_mismatch' });
    const otherTx = { ...(await signed(other)), txHash: hash };
    expect(await checker.check(otherTx, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: false, reason: 'proof_signature_mismatch' });
  });

  it('accepts an upper-case hash with the signature of its lower-case form, and a recovery byte of 0/1', async () => {
    const hash = await transfer(payTo, PRICE);
    const proof = await signed(hash);
    const upper = `0x${hash.slice(2).toUpperCase()}` as Hash;
    expect(await checker.check({ ...proof, txHash: upper }, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer });
    const v = Number.parseInt(proof.signature.slice(130), 16) - 27;
    const compact = `${proof.signature.slice(0, 130)}0${v}` as Hex;
    expect(await checker.check({ ...proof, signature: compact }, option, CONFIRMATIONS, MAX_AGE)).toMatchObject({ ok: true, payer });
  });

  it('refuses a signature that recovers to nothing, or only as its high-s twin, before any chain read', async () => {
    const hash = await transfer(payTo, PRICE);
    const dead = new TxProofChecker({ client: createPublicClient({ transport: http(await closedLoopbackUrl(), { retryCount: 0 }) }), clock: systemClock });
    const zero = { ...(await signed(hash)), signature: `0x${'00'.repeat(64)}1b` as Hex };
    expect(await dead.check(zero, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_signature_invalid' });
    const good = await signed(hash);
    const s = BigInt(`0x${good.signature.slice(66, 130)}`);
    const v = Number.parseInt(good.signature.slice(130), 16);
    const twin = `${good.signature.slice(0, 66)}${(SECP256K1_N - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
    expect(await dead.check({ ...good, signature: twin }, option, CONFIRMATIONS, MAX_AGE)).toEqual({ ok: false, reason: 'proof_signature_invalid' });
  });

  it('throws GW_ERR_CHAIN_UNAVAILABLE when the RPC is down', async () => {
    const hash = await transfer(payTo, PRICE);
    const dead = createPublicClient({ transport: http(await closedLoopbackUrl(), { retryCount: 0 }) });
    const err = await new TxProofChecker({ client: dead, clock: systemClock }).check(await signed(hash), option, CONFIRMATIONS, MAX_AGE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfrastructureError);
    expect(err).toMatchObject({ code: 'GW_ERR_CHAIN_UNAVAILABLE' });
  });
});
