/**
 * Facilitator mode against real things: anvil on Base's chain id with TestUsdc at Base's USDC
 * address, the official facilitator (@x402/core + @x402/evm) over HTTP, and payments signed by
 * the official clients from our own 402 challenge.
 */
import { x402Client, x402HTTPClient } from '@x402/core/client';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { testActions, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentOption } from '../../src/config/types.js';
import { ANVIL_DEV_KEYS, createDevChainClient, startAnvil, type DevChain, type DevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc, usdcBalance } from '../../src/tools/devchain/token.js';
import { InfrastructureError } from '../../src/errors.js';
import { FacilitatorClient, createFacilitatorDispatcher } from '../../src/payments/facilitator/client.js';
import { expectedFacilitatorKinds } from '../../src/payments/facilitator/request.js';
import { FacilitatorSettler } from '../../src/payments/facilitator/settler.js';
import { FacilitatorVerifier } from '../../src/payments/facilitator/verifier.js';
import type { PaymentContext } from '../../src/payments/ports.js';
import { buildChallenge, PAYMENT_REQUIRED_HEADER, requirementV1, requirementV2 } from '../../src/protocol/challenge.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { MULTICALL3_ADDRESS, startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { makeOption, makeRoute } from '../helpers/options.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';
import { checkFacilitatorSupport } from '../../src/payments/facilitator/support.js';

const [DEPLOYER_KEY, PAYER_KEY, FACILITATOR_KEY, PAY_TO_KEY, SECOND_FACILITATOR_KEY, BROKE_KEY, PENDING_FACILITATOR_KEY] = ANVIL_DEV_KEYS;
const payer = privateKeyToAccount(PAYER_KEY).address;
const payTo = privateKeyToAccount(PAY_TO_KEY).address;
const RESOURCE = 'https://gw.example.com/v1/weather?city=Paris';

const option = makeOption({ payTo, amount: 10_000n });
const route = makeRoute([option]);
const context: PaymentContext = { resourceUrl: RESOURCE, route };

let chain: DevChain;
let deployer: DevChainClient;
let first: TestFacilitator;
let second: TestFacilitator;
const dispatcher = createFacilitatorDispatcher();
const opened: FacilitatorClient[] = [];

function clients(...urls: string[]): FacilitatorClient[] {
  const made = urls.map((url) => new FacilitatorClient({ url, headers: {}, timeoutMs: 15_000 }, { dispatcher }));
  opened.push(...made);
  return made;
}

/** The official v2 / v1 client answering our challenge for `opt`, decoded by our strict decoder. */
async function pay(version: 1 | 2, opt: PaymentOption = option, key: Hex = PAYER_KEY): Promise<DecodedPayment> {
  const challenge = buildChallenge({ route, resourceUrl: RESOURCE, error: 'Payment required', options: [opt] });
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(key) });
  const http = new x402HTTPClient(client);
  const paymentRequired =
    version === 2
      ? http.getPaymentRequiredResponse((name) => (name.toUpperCase() === PAYMENT_REQUIRED_HEADER ? challenge.v2Header : null), challenge.v1Body)
      : http.getPaymentRequiredResponse(() => null, JSON.parse(JSON.stringify(challenge.v1Body)));
  const headers = http.encodePaymentSignatureHeader(await http.createPaymentPayload(paymentRequired));
  const outcome = decodePaymentHeader({ paymentSignature: headers['PAYMENT-SIGNATURE'], xPayment: headers['X-PAYMENT'] });
  if (outcome.kind !== 'ok') throw new Error(`official client's payment did not decode: ${JSON.stringify(outcome)}`);
  expect(outcome.payment.x402Version).toBe(version);
  return outcome.payment;
}

async function balances(): Promise<{ payer: bigint; payTo: bigint }> {
  const [p, t] = await Promise.all([usdcBalance(deployer, BASE_USDC, payer), usdcBalance(deployer, BASE_USDC, payTo)]);
  return { payer: p, payTo: t };
}

beforeAll(async () => {
  chain = await startAnvil({ chainId: 8453 });
  deployer = createDevChainClient(chain, DEPLOYER_KEY);
  await installTestUsdc(deployer, { at: BASE_USDC });
  await mintTestUsdc(deployer, { token: BASE_USDC, to: payer, amount: 5_000_000n });
  // One after the other: each plants Multicall3 unless it is there.
  first = await startTestFacilitator({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, privateKey: FACILITATOR_KEY });
  second = await startTestFacilitator({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, privateKey: SECOND_FACILITATOR_KEY });
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  await dispatcher.close();
  await Promise.all([first?.close(), second?.close()]);
  await chain?.stop();
});

describe('the official facilitator behind FacilitatorVerifier / FacilitatorSettler', () => {
  it('has Multicall3 planted, so refusals are explained', async () => {
    const code = await deployer.getCode({ address: MULTICALL3_ADDRESS });
    expect(code?.length).toBeGreaterThan(1_000);
  });

  it('v2: verifies and settles a payment from @x402/evm; the balances move exactly', async () => {
    const payment = await pay(2);
    const before = await balances();
    const sentFrom = first.requests.length;

    expect(await new FacilitatorVerifier(clients(first.url)).verify(payment, option, context)).toEqual({ valid: true, payer });
    const result = await new FacilitatorSettler(clients(first.url)).settle(payment, option, context);
    expect(result).toMatchObject({ success: true, payer });
    if (!result.success) return;

    const receipt = await deployer.getTransactionReceipt({ hash: result.transaction });
    expect(receipt.status).toBe('success');
    expect(await balances()).toEqual({ payer: before.payer - 10_000n, payTo: before.payTo + 10_000n });

    // What went over the wire: the payload as the client sent it, and our own v2 requirement.
    const sent = first.requests.slice(sentFrom).map((r) => [r.path, r.body]);
    const body = { x402Version: 2, paymentPayload: payment.raw, paymentRequirements: requirementV2(option) };
    expect(sent).toEqual([
      ['/verify', body],
      ['/settle', body],
    ]);
  });

  it('v1: verifies and settles a payment from the v1 client with our v1 requirement', async () => {
    const payment = await pay(1);
    const before = await balances();
    const sentFrom = first.requests.length;

    expect(await new FacilitatorVerifier(clients(first.url)).verify(payment, option, context)).toEqual({ valid: true, payer });
    const result = await new FacilitatorSettler(clients(first.url)).settle(payment, option, context);
    expect(result).toMatchObject({ success: true, payer });
    expect(await balances()).toEqual({ payer: before.payer - 10_000n, payTo: before.payTo + 10_000n });
    expect(first.requests[sentFrom]?.body).toEqual({
      x402Version: 1,
      paymentPayload: payment.raw,
      paymentRequirements: requirementV1(option, RESOURCE, route),
    });
  });

  it('falls back past a dead facilitator to the next one', async () => {
    const dead = await closedLoopbackUrl();
    const payment = await pay(2);
    const before = await balances();
    const sentFrom = second.requests.length;

    const list = clients(dead, second.url);
    expect(await new FacilitatorVerifier(list).verify(payment, option, context)).toEqual({ valid: true, payer });
    expect(await new FacilitatorSettler(list).settle(payment, option, context)).toMatchObject({ success: true, payer });
    expect(await balances()).toEqual({ payer: before.payer - 10_000n, payTo: before.payTo + 10_000n });
    expect(second.requests.slice(sentFrom).map((r) => r.path)).toEqual(['/verify', '/settle']);
  });

  it('all dead: verify throws GW_ERR_FACILITATOR_UNAVAILABLE, settle fails with nothing on chain', async () => {
    const list = clients(await closedLoopbackUrl(), await closedLoopbackUrl());
    const payment = await pay(2);
    const before = await balances();
    const err = await new FacilitatorVerifier(list).verify(payment, option, context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfrastructureError);
    expect(err).toMatchObject({ code: 'GW_ERR_FACILITATOR_UNAVAILABLE' });
    expect(await new FacilitatorSettler(list).settle(payment, option, context)).toMatchObject({
      success: false,
      reason: 'unexpected_settle_error',
      maybeOnChain: false,
    });
    expect(await balances()).toEqual(before);
  });

  it('a replayed payment is refused by the first facilitator, and that refusal is final', async () => {
    const payment = await pay(2);
    const settled = await new FacilitatorSettler(clients(first.url)).settle(payment, option, context);
    expect(settled.success).toBe(true);

    const secondFrom = second.requests.length;
    const list = clients(first.url, second.url);
    expect(await new FacilitatorVerifier(list).verify(payment, option, context)).toEqual({
      valid: false,
      reason: 'invalid_exact_evm_nonce_already_used',
      message: expect.any(String),
      payer,
    });
    const again = await new FacilitatorSettler(list).settle(payment, option, context);
    expect(again).toMatchObject({ success: false, reason: 'invalid_exact_evm_nonce_already_used', maybeOnChain: false });
    expect(second.requests.length).toBe(secondFrom);
  });

  it('the facilitator judges the payment against OUR requirement, not the one the client echoed', async () => {
    const payment = await pay(2);
    const dearer = makeOption({ payTo, amount: 20_000n });
    expect(await new FacilitatorVerifier(clients(first.url)).verify(payment, dearer, context)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_payload_authorization_value_mismatch',
    });
    const elsewhere = makeOption({ payTo: privateKeyToAccount(BROKE_KEY).address });
    expect(await new FacilitatorVerifier(clients(first.url)).verify(payment, elsewhere, context)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_recipient_mismatch',
    });
  });

  it('a payer without funds is refused as such (Multicall3 diagnosis)', async () => {
    const payment = await pay(2, option, BROKE_KEY);
    expect(await new FacilitatorVerifier(clients(first.url)).verify(payment, option, context)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_insufficient_balance',
    });
  });

  it('checkFacilitatorSupport: lists what /supported lacks', async () => {
    const [report] = await checkFacilitatorSupport(clients(first.url), expectedFacilitatorKinds(option.asset.network));
    expect(report).toMatchObject({ reachable: true, missing: [] });
    // v2 is registered for the one chain given; v1 for every EVM network name @x402/evm knows,
    // although the signer is connected to this chain only.
    const sepolia = { ...option.asset.network, caip2: 'eip155:84532' as const, chainId: 84532, v1Name: 'base-sepolia' };
    const [other] = await checkFacilitatorSupport(clients(first.url), expectedFacilitatorKinds(sepolia));
    expect(other).toMatchObject({ reachable: true, missing: [{ x402Version: 2, scheme: 'exact', network: 'eip155:84532' }] });
  });
});

describe('settlement_pending', () => {
  let slow: TestFacilitator;

  beforeAll(async () => {
    // Receipt waits give up after 300 ms, so with mining paused /settle answers settlement_pending.
    slow = await startTestFacilitator({
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      privateKey: PENDING_FACILITATOR_KEY,
      confirmationTimeoutMs: 300,
    });
  });
  afterAll(async () => {
    await slow?.close();
  });

  it('retries once on the same facilitator, then reports maybeOnChain with the hash; the tx does land', async () => {
    const payment = await pay(2);
    const before = await balances();
    const sentFrom = slow.requests.length;
    const secondFrom = second.requests.length;

    const anvil = testActions({ mode: 'anvil' })(deployer);
    await anvil.setAutomine(false);
    let result;
    try {
      result = await new FacilitatorSettler(clients(slow.url, second.url)).settle(payment, option, context);
    } finally {
      await anvil.setAutomine(true);
    }
    expect(result).toMatchObject({ success: false, reason: 'settlement_pending', maybeOnChain: true });
    expect(slow.requests.slice(sentFrom).map((r) => r.path)).toEqual(['/settle', '/settle']);
    expect(second.requests.length).toBe(secondFrom);
    if (result.success || result.transaction === undefined) throw new Error('expected a pending hash');

    // maybeOnChain was right: once a block is mined the payment has moved.
    await anvil.mine({ blocks: 1 });
    const receipt = await deployer.waitForTransactionReceipt({ hash: result.transaction });
    expect(receipt.status).toBe('success');
    expect(await balances()).toEqual({ payer: before.payer - 10_000n, payTo: before.payTo + 10_000n });
  });
});
