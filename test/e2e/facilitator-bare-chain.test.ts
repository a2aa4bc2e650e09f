/**
 * The official facilitator on a chain without Multicall3 (fresh anvil): what works, what degrades.
 * @x402/evm's verify uses Multicall3 only to explain a failed simulation, so a good payment still
 * verifies and settles, while every refusal found by simulation collapses into one generic reason.
 */
import { x402Client, x402HTTPClient } from '@x402/core/client';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, createDevChainClient, startAnvil, type DevChain } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, installTestUsdc, mintTestUsdc } from '../../src/tools/devchain/token.js';
import { FacilitatorClient } from '../../src/payments/facilitator/client.js';
import { FacilitatorSettler } from '../../src/payments/facilitator/settler.js';
import { FacilitatorVerifier } from '../../src/payments/facilitator/verifier.js';
import { buildChallenge, PAYMENT_REQUIRED_HEADER } from '../../src/protocol/challenge.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { MULTICALL3_ADDRESS, startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { makeOption, makeRoute, PAYMENT_CONTEXT } from '../helpers/options.js';

const [DEPLOYER_KEY, PAYER_KEY, FACILITATOR_KEY, PAY_TO_KEY, BROKE_KEY] = ANVIL_DEV_KEYS;
const payer = privateKeyToAccount(PAYER_KEY).address;
const option = makeOption({ payTo: privateKeyToAccount(PAY_TO_KEY).address });
const route = makeRoute([option]);

let chain: DevChain;
let facilitator: TestFacilitator;
let client: FacilitatorClient;

async function pay(key: Hex): Promise<DecodedPayment> {
  const challenge = buildChallenge({ route, resourceUrl: 'https://gw.example.com/x', error: 'Payment required', options: [option] });
  const core = new x402Client();
  registerExactEvmScheme(core, { signer: privateKeyToAccount(key) });
  const http = new x402HTTPClient(core);
  const required = http.getPaymentRequiredResponse((n) => (n.toUpperCase() === PAYMENT_REQUIRED_HEADER ? challenge.v2Header : null), challenge.v1Body);
  const headers = http.encodePaymentSignatureHeader(await http.createPaymentPayload(required));
  const outcome = decodePaymentHeader({ paymentSignature: headers['PAYMENT-SIGNATURE'] });
  if (outcome.kind !== 'ok') throw new Error(JSON.stringify(outcome));
  return outcome.payment;
}

beforeAll(async () => {
  chain = await startAnvil({ chainId: 8453 });
  const deployer = createDevChainClient(chain, DEPLOYER_KEY);
  await installTestUsdc(deployer, { at: BASE_USDC });
  await mintTestUsdc(deployer, { token: BASE_USDC, to: payer, amount: 1_000_000n });
  facilitator = await startTestFacilitator({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, privateKey: FACILITATOR_KEY, multicall3: false });
  client = new FacilitatorClient({ url: facilitator.url, headers: {}, timeoutMs: 15_000 });
  expect(await deployer.getCode({ address: MULTICALL3_ADDRESS })).toBeUndefined();
});

afterAll(async () => {
  await client?.close();
  await facilitator?.close();
  await chain?.stop();
});

it('a good payment verifies and settles without Multicall3', async () => {
  const payment = await pay(PAYER_KEY);
  expect(await new FacilitatorVerifier([client]).verify(payment, option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer });
  expect(await new FacilitatorSettler([client]).settle(payment, option, PAYMENT_CONTEXT)).toMatchObject({ success: true, payer });

  // A replay: the precise reason needs Multicall3; without it only the generic one is left.
  expect(await new FacilitatorVerifier([client]).verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({
    valid: false,
    reason: 'invalid_exact_evm_transaction_simulation_failed',
  });
});

it('an unfunded payer is only "simulation failed" without Multicall3', async () => {
  expect(await new FacilitatorVerifier([client]).verify(await pay(BROKE_KEY), option, PAYMENT_CONTEXT)).toMatchObject({
    valid: false,
    reason: 'invalid_exact_evm_transaction_simulation_failed',
  });
});
