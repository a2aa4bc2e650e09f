/**
 * `demo --self-test`: one unpaid and one paid request against the running demo, the paid one made
 * by the official x402 v2 client, and the money checked on chain rather than taken from the
 * gateway's word. Prints each step; resolves true when all of them held.
 */
import { x402Client } from '@x402/core/client';
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from '@x402/core/http';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment } from '@x402/fetch';
import { formatUnits, type Address, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { TEST_USDC_DECIMALS } from '../devchain/token.js';

export interface SelfTestParams {
  readonly gatewayUrl: string;
  readonly payerKey: Hex;
  readonly payTo: Address;
  /** The price of GET /v1/weather in atomic USDC units, which payTo must gain. */
  readonly expectedAmount: bigint;
  readonly balanceOf: (owner: Address) => Promise<bigint>;
  readonly out: (line: string) => void;
}

/** Fetches cannot hang the self-test: a settlement on anvil takes well under a second. */
export const SELF_TEST_REQUEST_TIMEOUT_MS = 30_000;

export async function runSelfTest(p: SelfTestParams): Promise<boolean> {
  const url = `${p.gatewayUrl}/v1/weather?city=Paris`;
  const usdc = (atomic: bigint): string => `${formatUnits(atomic, TEST_USDC_DECIMALS)} USDC`;
  let ok = true;
  const check = (passed: boolean, line: string): void => {
    p.out(`self-test: ${passed ? 'ok  ' : 'FAIL'} ${line}`);
    ok &&= passed;
  };

  const unpaid = await fetch(url, { signal: AbortSignal.timeout(SELF_TEST_REQUEST_TIMEOUT_MS) });
  await unpaid.arrayBuffer();
  const challenge = unpaid.headers.get('payment-required');
  const offer = challenge ? decodePaymentRequiredHeader(challenge).accepts[0] : undefined;
  check(
    unpaid.status === 402 && offer !== undefined,
    `GET ${url} without payment -> ${unpaid.status} ${unpaid.statusText}` +
      (offer ? ` (asks ${offer.amount} atomic units of ${offer.asset} on ${offer.network}, payable to ${offer.payTo})` : ' (no PAYMENT-REQUIRED header)'),
  );

  const before = await p.balanceOf(p.payTo);
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(p.payerKey) });
  const paid = await wrapFetchWithPayment(fetch, client)(url, { signal: AbortSignal.timeout(SELF_TEST_REQUEST_TIMEOUT_MS) });
  const body = await paid.text();
  const receiptHeader = paid.headers.get('payment-response');
  const receipt = receiptHeader ? decodePaymentResponseHeader(receiptHeader) : undefined;
  check(
    paid.status === 200 && receipt?.success === true,
    `GET ${url} paid with @x402/fetch -> ${paid.status} ${paid.statusText}` +
      (receipt ? `, settled: ${receipt.success}, transaction ${receipt.transaction}` : ', no PAYMENT-RESPONSE header'),
  );
  p.out(`self-test:      body: ${body.trim()}`);

  const after = await p.balanceOf(p.payTo);
  check(
    after - before === p.expectedAmount,
    `payTo ${p.payTo} balance ${usdc(before)} -> ${usdc(after)} (+${usdc(after - before)}, expected +${usdc(p.expectedAmount)})`,
  );
  p.out(ok ? 'self-test: passed' : 'self-test: FAILED');
  return ok;
}
