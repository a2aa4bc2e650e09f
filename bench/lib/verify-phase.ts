/**
 * Verification alone, on one thread: how many payments the gateway's verifier checks per second
 * of CPU, with the chain reads answered by a fake at no cost (they are I/O, measured in the paid
 * windows). For comparison, the same payments through viem's `recoverTypedDataAddress`, the path
 * the verifier used before (and falls back to without the native binary).
 */
import { recoverTypedDataAddress } from 'viem';
import type { PaymentOption } from '../../src/config/types.js';
import type { ExactEvmChainReader } from '../../src/payments/exact-evm/chain-reader.js';
import { secp256k1Backend } from '../../src/payments/exact-evm/secp256k1-native.js';
import { recoverEcdsaSigner } from '../../src/payments/exact-evm/signature.js';
import { transferWithAuthorizationDigest, transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import { LocalExactEvmVerifier } from '../../src/payments/exact-evm/verify.js';
import { systemClock } from '../../src/payments/ports.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { median } from './stats.js';

export interface VerifyResults {
  readonly backend: string;
  readonly payments: number;
  /** Per second of process CPU, median of the passes. */
  readonly verifierPerSecond: number;
  readonly decodeAndVerifyPerSecond: number;
  readonly digestAndRecoverPerSecond: number;
  readonly viemRecoverTypedDataPerSecond: number;
}

/** Every chain read answered at once: an EOA payer with funds and an unused nonce. */
const instantChain: ExactEvmChainReader = {
  chainId: 8453,
  hasCode: async () => false,
  isValidErc1271Signature: async () => false,
  authorizationState: async () => false,
  balanceOf: async () => 10n ** 12n,
  nonceStateAndBalance: async () => ({ used: false, balance: 10n ** 12n }),
};

/** Runs `fn` over all items and returns items per CPU second (user + system, whole process). */
async function perCpuSecond<T>(items: readonly T[], fn: (item: T) => Promise<void> | void): Promise<number> {
  const start = process.cpuUsage();
  for (const item of items) await fn(item);
  const used = process.cpuUsage(start);
  return items.length / ((used.user + used.system) / 1e6);
}

export async function runVerifyPhase(headers: readonly Record<string, string>[], option: PaymentOption, passes: number): Promise<VerifyResults> {
  const texts = headers.map((h) => {
    const value = Object.values(h)[0];
    if (value === undefined) throw new Error('empty payment header');
    return value;
  });
  const decode = (text: string): DecodedPayment => {
    const decoded = decodePaymentHeader({ paymentSignature: text });
    if (decoded.kind !== 'ok') throw new Error(`pre-signed payment did not decode: ${decoded.kind}`);
    return decoded.payment;
  };
  const payments = texts.map(decode);
  const verifyAll = (verifier: LocalExactEvmVerifier) => async (payment: DecodedPayment) => {
    const result = await verifier.verify(payment, option);
    if (!result.valid) throw new Error(`pre-signed payment refused: ${result.reason}`);
  };
  // A fresh verifier per pass: its signer cache must not answer for the payments it saw before.
  const fresh = (): LocalExactEvmVerifier => new LocalExactEvmVerifier({ reader: instantChain, clock: systemClock });
  await perCpuSecond(payments.slice(0, 200), verifyAll(fresh())); // warm-up

  const verifier: number[] = [];
  const decodeAndVerify: number[] = [];
  const recover: number[] = [];
  for (let pass = 0; pass < passes; pass++) {
    verifier.push(await perCpuSecond(payments, verifyAll(fresh())));
    const v = fresh();
    decodeAndVerify.push(await perCpuSecond(texts, (text) => verifyAll(v)(decode(text))));
    recover.push(
      await perCpuSecond(payments, async (p) => {
        const digest = transferWithAuthorizationDigest(option.asset, p.payload.authorization);
        if ((await recoverEcdsaSigner(digest, p.payload.signature)) === undefined) throw new Error('did not recover');
      }),
    );
  }
  // viem's path is ~100x slower: a slice is enough.
  const viemSlice = payments.slice(0, Math.min(payments.length, 300));
  const viem = await perCpuSecond(viemSlice, async (p) => {
    await recoverTypedDataAddress({ ...transferWithAuthorizationTypedData(option.asset, p.payload.authorization), signature: p.payload.signature });
  });
  const backend = secp256k1Backend();
  return {
    backend: backend.kind === 'native' ? 'native libsecp256k1' : `viem (native unavailable: ${backend.reason})`,
    payments: payments.length,
    verifierPerSecond: median(verifier),
    decodeAndVerifyPerSecond: median(decodeAndVerify),
    digestAndRecoverPerSecond: median(recover),
    viemRecoverTypedDataPerSecond: viem,
  };
}
