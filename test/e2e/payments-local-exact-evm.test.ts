/**
 * Local verification and settlement on a real chain: anvil with chain id 8453, TestUsdc planted
 * at Base's USDC address, payloads signed by the official clients (`@x402/evm` v2, `x402` v1).
 * Money is checked by balances, not by our own answers.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { PaymentRequirements } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import { custom, testActions, toHex, type Address, type PrivateKeyAccount } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createPaymentHeader } from 'x402/client';
import { PaymentRequirementsSchema } from 'x402/types';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_MULTICALL3, DEFAULT_REVERT_PENALTY_SECONDS, DEFAULT_REPLACE_AFTER_SECONDS, DEFAULT_SETTLE_MAX_GAS } from '../../src/config/schema.js';
import type { AssetConfig, NetworkConfig, PaymentOption } from '../../src/config/types.js';
import { ANVIL_DEV_KEYS, createDevChainClient, startAnvil, type DevChain, type DevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, compileSolidity, installTestUsdc, mintTestUsdc, usdcBalance } from '../../src/tools/devchain/token.js';
import { InfrastructureError } from '../../src/errors.js';
import { CachedVerifier } from '../../src/payments/cached-verifier.js';
import { createChainClient, rpcTransport, type ChainClient } from '../../src/payments/chain/client.js';
import { neverReachedNode } from '../../src/payments/chain/rpc-errors.js';
import { LocalExactEvmSettler } from '../../src/payments/exact-evm/settle.js';
import { transferWithAuthorizationDigest, transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import { LocalExactEvmVerifier } from '../../src/payments/exact-evm/verify.js';
import { systemClock, type Receipt } from '../../src/payments/ports.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { REBROADCAST_AFTER_MS } from '../../src/payments/exact-evm/reconciler.js';
import { requirementV1, requirementV2 } from '../../src/protocol/challenge.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import { withWire } from '../../src/protocol/option-wire.js';
import type { DecodedPayment, Hex } from '../../src/protocol/types.js';
import { realClock } from '../helpers/clock.js';
import { makePayment, PAYMENT_CONTEXT } from '../helpers/options.js';
import { waitFor } from '../helpers/wait.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';

const SETTLER_KEY = ANVIL_DEV_KEYS[1];
const PAYER = privateKeyToAccount(ANVIL_DEV_KEYS[2]);
const UNFUNDED = privateKeyToAccount(ANVIL_DEV_KEYS[3]);
const PAY_TO = privateKeyToAccount(ANVIL_DEV_KEYS[4]).address;
const WALLET_OWNER = privateKeyToAccount(ANVIL_DEV_KEYS[7]);
const PRICE = 10_000n; // $0.01
const FUNDS = 100_000_000n; // 100 USDC

let chain: DevChain;
let admin: DevChainClient;
let network: NetworkConfig;
let option: PaymentOption;
let client: ChainClient;
let verifier: CachedVerifier;
let settler: LocalExactEvmSettler;

const test = () => admin.extend(testActions({ mode: 'anvil' }));

function decodeOk(headers: { paymentSignature?: string; xPayment?: string }): DecodedPayment {
  const decoded = decodePaymentHeader(headers);
  if (decoded.kind !== 'ok') throw new Error(`payment did not decode: ${JSON.stringify(decoded)}`);
  return decoded.payment;
}

/** A v2 payment exactly as `@x402/evm`'s client builds it for our challenge's requirement. */
async function officialV2(opt: PaymentOption = option, signer: PrivateKeyAccount = PAYER): Promise<DecodedPayment> {
  const wire = requirementV2(opt);
  const accepted: PaymentRequirements = { ...wire, network: opt.asset.network.caip2, extra: { ...wire.extra } };
  const result = await new ExactEvmScheme(signer).createPaymentPayload(2, accepted);
  const body = { x402Version: 2, accepted, payload: result.payload };
  return decodeOk({ paymentSignature: Buffer.from(JSON.stringify(body)).toString('base64') });
}

/** A v1 payment from `x402` 1.2.0's `createPaymentHeader`, as `x402-fetch` sends it. */
async function officialV1(opt: PaymentOption = option): Promise<DecodedPayment> {
  const requirement = PaymentRequirementsSchema.parse(
    requirementV1(opt, 'http://gateway.test/v1/weather', { description: 'weather', mimeType: 'application/json' }),
  );
  return decodeOk({ xPayment: await createPaymentHeader(PAYER, 1, requirement) });
}

const balances = async (...owners: Address[]): Promise<bigint[]> => Promise.all(owners.map((o) => usdcBalance(client, BASE_USDC, o)));

beforeAll(async () => {
  chain = await startAnvil({ chainId: 8453 });
  admin = createDevChainClient(chain, ANVIL_DEV_KEYS[0]);
  await installTestUsdc(admin, { at: BASE_USDC });
  await mintTestUsdc(admin, { token: BASE_USDC, to: PAYER.address, amount: FUNDS });
  network = {
    name: 'base',
    caip2: 'eip155:8453',
    chainId: 8453,
    v1Name: 'base',
    rpc: [chain.rpcUrl],
    verify: 'local',
    settle: {
      mode: 'local',
      privateKey: SETTLER_KEY,
      receiptTimeoutMs: 10_000,
      maxGas: DEFAULT_SETTLE_MAX_GAS,
      revertPenaltySeconds: DEFAULT_REVERT_PENALTY_SECONDS,
      replaceAfterSeconds: DEFAULT_REPLACE_AFTER_SECONDS,
      minBalanceWei: undefined,
    },
    // Canonical, but not installed on this chain: verification falls back to separate reads.
    multicall3: DEFAULT_MULTICALL3,
    proofConfirmations: 1,
    proofMaxAgeSeconds: 3600,
  };
  const asset: AssetConfig = {
    id: 'usdc@base',
    network,
    address: BASE_USDC,
    eip712Name: 'USD Coin',
    eip712Version: '2',
    decimals: 6,
    symbol: 'USDC',
  };
  option = withWire({ scheme: 'exact', asset, amount: PRICE, payTo: PAY_TO, maxTimeoutSeconds: 300 });
  client = createChainClient(network);
  verifier = new CachedVerifier(new LocalExactEvmVerifier({ client, clock: systemClock }), { clock: systemClock });
  settler = new LocalExactEvmSettler({ network, client, privateKey: SETTLER_KEY, clock: systemClock });
});

afterAll(async () => {
  await chain?.stop();
});

describe('verify on anvil', () => {
  it('accepts a v2 payload signed by the official @x402/evm client', async () => {
    expect(await verifier.verify(await officialV2(), option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER.address });
  });

  it('accepts a v1 payload signed by x402 1.2.0', async () => {
    expect(await verifier.verify(await officialV1(), option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: PAYER.address });
  });

  it.each([
    ['wrong amount', () => ({ ...option, amount: PRICE + 1n }), 'invalid_exact_evm_payload_authorization_value_mismatch'],
    ['wrong payTo', () => ({ ...option, payTo: UNFUNDED.address }), 'invalid_exact_evm_recipient_mismatch'],
  ])('refuses a payment checked against the %s', async (_name, other, reason) => {
    expect(await verifier.verify(await officialV2(), other(), PAYMENT_CONTEXT)).toEqual({ valid: false, reason, payer: PAYER.address });
  });

  it('refuses an expired authorization', async () => {
    // The client signs validBefore = now + maxTimeoutSeconds (300).
    const later = new LocalExactEvmVerifier({ client, clock: realClock(295) });
    expect(await later.verify(await officialV2(), option)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_before',
    });
  });

  it('refuses an authorization that is not valid yet', async () => {
    // The official v2 client always signs validAfter = 0, so this one is signed by hand.
    const now = systemClock.nowSeconds();
    const authorization = {
      from: PAYER.address,
      to: PAY_TO,
      value: PRICE,
      validAfter: now + 3600n,
      validBefore: now + 7200n,
      nonce: toHex(crypto.getRandomValues(new Uint8Array(32))),
    };
    const signature = await PAYER.signTypedData(transferWithAuthorizationTypedData(option.asset, authorization));
    const payment = makePayment({ option, authorization, signature });
    expect(await verifier.verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_after',
    });
    // Settling it is refused before sending: by our own clock check, and by the token's
    // simulation when our clock is wrong.
    expect(await settler.settle(payment, option)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_after',
      maybeOnChain: false,
    });
    const skewed = new LocalExactEvmSettler({ network, client, privateKey: SETTLER_KEY, clock: realClock(3700) });
    expect(await skewed.settle(payment, option)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_after',
      message: 'execution reverted: FiatTokenV2: authorization is not yet valid',
      maybeOnChain: false,
    });
  });

  it('refuses a tampered signature', async () => {
    const payment = await officialV2();
    const sig = payment.payload.signature;
    const tampered: Hex = `0x${sig.slice(2, 40)}${sig[40] === '0' ? '1' : '0'}${sig.slice(41)}`;
    const result = await verifier.verify({ ...payment, payload: { ...payment.payload, signature: tampered } }, option, PAYMENT_CONTEXT);
    expect(result).toMatchObject({ valid: false, reason: 'invalid_exact_evm_signature' });
  });

  it('refuses a payer without the funds', async () => {
    expect(await verifier.verify(await officialV2(option, UNFUNDED), option, PAYMENT_CONTEXT)).toEqual({
      valid: false,
      reason: 'invalid_exact_evm_insufficient_balance',
      payer: UNFUNDED.address,
    });
  });

  it('refuses a nonce that was used on chain, and keeps refusing it from the cache', async () => {
    const payment = await officialV2();
    expect(await settler.settle(payment, option)).toMatchObject({ success: true });
    const before = { ...verifier.counters };
    expect(await verifier.verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: false, reason: 'invalid_exact_evm_nonce_already_used' });
    expect(await verifier.verify(payment, option, PAYMENT_CONTEXT)).toMatchObject({ valid: false, reason: 'invalid_exact_evm_nonce_already_used' });
    expect(verifier.counters.misses - before.misses).toBe(1);
    expect(verifier.counters.hits - before.hits).toBe(1);
  });
});

describe('settle on anvil', () => {
  it('moves exactly the amount from payer to payTo', async () => {
    const [payerBefore = 0n, payToBefore = 0n] = await balances(PAYER.address, PAY_TO);
    const result = await settler.settle(await officialV2(), option);
    expect(result).toMatchObject({ success: true, payer: PAYER.address });
    const [payerAfter, payToAfter] = await balances(PAYER.address, PAY_TO);
    expect(payerAfter).toBe(payerBefore - PRICE);
    expect(payToAfter).toBe(payToBefore + PRICE);
    if (!result.success) throw new Error('unreachable');
    const receipt = await client.getTransactionReceipt({ hash: result.transaction });
    expect(receipt.status).toBe('success');
    expect(receipt.from.toLowerCase()).toBe(settler.address.toLowerCase());
  });

  it('settles a v1 payment', async () => {
    const [before = 0n] = await balances(PAY_TO);
    expect(await settler.settle(await officialV1(), option)).toMatchObject({ success: true });
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);
  });

  it('settles 5 distinct authorizations concurrently (nonce manager: no "nonce too low")', async () => {
    const payments = await Promise.all([1, 2, 3, 4, 5].map(() => officialV2()));
    const [before = 0n] = await balances(PAY_TO);
    const results = await Promise.all(payments.map((p) => settler.settle(p, option)));
    expect(results.map((r) => r.success)).toEqual([true, true, true, true, true]);
    const hashes = new Set(results.map((r) => (r.success ? r.transaction : '')));
    expect(hashes.size).toBe(5);
    expect(await balances(PAY_TO)).toEqual([before + 5n * PRICE]);
  });

  it('settling the same authorization twice fails the second time and moves no more money', async () => {
    const payment = await officialV2();
    expect(await settler.settle(payment, option)).toMatchObject({ success: true });
    const [payerBefore, payToBefore] = await balances(PAYER.address, PAY_TO);
    expect(await settler.settle(payment, option)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_nonce_already_used',
      message: 'execution reverted: FiatTokenV2: authorization is used or canceled',
      maybeOnChain: false,
    });
    expect(await balances(PAYER.address, PAY_TO)).toEqual([payerBefore, payToBefore]);
  });

  it('two concurrent settlements of one authorization both mined: one succeeds, the other reverts', async () => {
    const payment = await officialV2();
    const [before = 0n] = await balances(PAY_TO);
    await test().setAutomine(false);
    try {
      // With automine off both usually pass estimation (the nonce is unused) and wait in the
      // mempool. On a loaded machine the second estimate can run after the first transaction
      // entered the pool, which anvil simulates against: then it is refused before sending.
      const pending = [settler.settle(payment, option), settler.settle(payment, option)];
      let refusedEarly = false;
      void Promise.race(pending).then((r) => (refusedEarly = !r.success));
      await waitFor(async () => refusedEarly || (await test().getTxpoolStatus()).pending === 2);
      // Read before mining: once mined, the reverted settlement may resolve first too.
      const sentOnlyOne = refusedEarly;
      await test().mine({ blocks: 1 });
      const results = await Promise.all(pending);
      expect(results.filter((r) => r.success)).toHaveLength(1);
      expect(results.find((r) => !r.success)).toMatchObject(
        sentOnlyOne
          ? { reason: 'invalid_exact_evm_nonce_already_used', maybeOnChain: false }
          : { reason: 'invalid_exact_evm_transaction_failed', maybeOnChain: false, reverted: true, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) },
      );
    } finally {
      await test().setAutomine(true);
    }
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);
  });

  it('a receipt that does not come in time is settlement_pending with the tx hash; the money moves when mined', async () => {
    const slow = new LocalExactEvmSettler({ network, client, privateKey: ANVIL_DEV_KEYS[5], clock: systemClock, receiptTimeoutMs: 300 });
    const [before = 0n] = await balances(PAY_TO);
    await test().setAutomine(false);
    let result;
    try {
      result = await slow.settle(await officialV2(), option);
      expect(result).toMatchObject({ success: false, reason: 'settlement_pending', maybeOnChain: true });
      await test().mine({ blocks: 1 });
    } finally {
      await test().setAutomine(true);
    }
    if (result.success || result.transaction === undefined) throw new Error('expected a pending tx hash');
    expect((await client.getTransactionReceipt({ hash: result.transaction })).status).toBe('success');
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);
  });

  it('re-checks the pure terms before sending anything (a payment that skipped verification)', async () => {
    const before = await balances(PAY_TO, UNFUNDED.address);
    expect(await settler.settle(await officialV2(), { ...option, payTo: UNFUNDED.address })).toEqual({
      success: false,
      reason: 'invalid_exact_evm_recipient_mismatch',
      maybeOnChain: false,
    });
    expect(await balances(PAY_TO, UNFUNDED.address)).toEqual(before);
  });

  it('refuses an expired authorization before sending anything', async () => {
    const late = new LocalExactEvmSettler({ network, client, privateKey: SETTLER_KEY, clock: realClock(295) });
    const before = await balances(PAY_TO);
    expect(await late.settle(await officialV2(), option)).toEqual({
      success: false,
      reason: 'invalid_exact_evm_payload_authorization_valid_before',
      maybeOnChain: false,
    });
    expect(await balances(PAY_TO)).toEqual(before);
  });

  it('maps an unfunded payer to insufficient_balance without sending', async () => {
    expect(await settler.settle(await officialV2(option, UNFUNDED), option)).toMatchObject({
      success: false,
      reason: 'invalid_exact_evm_insufficient_balance',
      maybeOnChain: false,
    });
  });
});

describe('a contract wallet payer (ERC-1271)', () => {
  const WALLET_SOURCE = `
    // SPDX-License-Identifier: Apache-2.0
    pragma solidity ^0.8.24;
    /// Accepts a signature whose first 65 bytes are the owner's ECDSA signature of the digest.
    contract TestWallet {
        address public immutable owner;
        constructor(address owner_) { owner = owner_; }
        function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
            if (signature.length < 65) return 0xffffffff;
            bytes32 r = bytes32(signature[0:32]);
            bytes32 s = bytes32(signature[32:64]);
            uint8 v = uint8(signature[64]);
            return ecrecover(digest, v, r, s) == owner ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
        }
    }`;

  it('verifies through isValidSignature and settles with the bytes overload', async () => {
    const artifact = compileSolidity(WALLET_SOURCE, 'TestWallet');
    const deployHash = await admin.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, args: [WALLET_OWNER.address] });
    const deployed = await admin.waitForTransactionReceipt({ hash: deployHash });
    const wallet = deployed.contractAddress;
    if (wallet == null) throw new Error('wallet not deployed');
    await mintTestUsdc(admin, { token: BASE_USDC, to: wallet, amount: FUNDS });

    const now = systemClock.nowSeconds();
    const authorization = {
      from: wallet,
      to: PAY_TO,
      value: PRICE,
      validAfter: now - 600n,
      validBefore: now + 300n,
      nonce: toHex(crypto.getRandomValues(new Uint8Array(32))),
    };
    const ecdsa = await WALLET_OWNER.sign({ hash: transferWithAuthorizationDigest(option.asset, authorization) });
    // 97 bytes: not an ECDSA signature, so only the `bytes signature` overload can carry it.
    const signature: Hex = `${ecdsa}${'00'.repeat(32)}`;
    const payment: DecodedPayment = {
      x402Version: 2,
      header: 'payment-signature',
      scheme: 'exact',
      network: 'eip155:8453',
      accepted: requirementV2(option),
      payload: { signature, authorization },
      raw: {},
    };

    expect(await verifier.verify(payment, option, PAYMENT_CONTEXT)).toEqual({ valid: true, payer: wallet });
    const [before = 0n] = await balances(PAY_TO);
    expect(await settler.settle(payment, option)).toMatchObject({ success: true, payer: wallet });
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);

    const forged: DecodedPayment = { ...payment, payload: { ...payment.payload, signature: `0x${'11'.repeat(97)}` } };
    expect(await verifier.verify(forged, option, PAYMENT_CONTEXT)).toMatchObject({ valid: false, reason: 'invalid_exact_evm_signature' });
  });
});

describe('an unreachable chain', () => {
  it('verify throws InfrastructureError (GW_ERR_CHAIN_UNAVAILABLE); settle returns a failure', async () => {
    const dead: NetworkConfig = { ...network, rpc: [await closedLoopbackUrl()] };
    const deadClient = createChainClient(dead);
    const payment = await officialV2();
    const deadVerifier = new CachedVerifier(new LocalExactEvmVerifier({ client: deadClient, clock: systemClock }), { clock: systemClock });
    const error = await deadVerifier.verify(payment, option, PAYMENT_CONTEXT).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(InfrastructureError);
    expect(error).toMatchObject({ code: 'GW_ERR_CHAIN_UNAVAILABLE' });

    const deadSettler = new LocalExactEvmSettler({ network: dead, client: deadClient, privateKey: SETTLER_KEY, clock: systemClock });
    expect(await deadSettler.settle(payment, option)).toMatchObject({
      success: false,
      reason: 'unexpected_settle_error',
      maybeOnChain: false,
    });
  });

  it('falls back to the next RPC endpoint when the first is down', async () => {
    const twoEndpoints: NetworkConfig = { ...network, rpc: [await closedLoopbackUrl(), chain.rpcUrl] };
    const fallbackClient = createChainClient(twoEndpoints);
    const v = new LocalExactEvmVerifier({ client: fallbackClient, clock: systemClock });
    expect(await v.verify(await officialV2(), option)).toMatchObject({ valid: true });
    const s = new LocalExactEvmSettler({ network: twoEndpoints, client: fallbackClient, privateKey: ANVIL_DEV_KEYS[6], clock: systemClock });
    const [before = 0n] = await balances(PAY_TO);
    expect(await s.settle(await officialV2(), option)).toMatchObject({ success: true });
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);
  });

  it('a send that never reached a node sends nothing and leaves no nonce gap', async () => {
    // One settler whose sends fail to connect until `down` is cleared.
    let down = true;
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const flaky = custom({
      request: async ({ method, params }: { method: string; params?: unknown }): Promise<unknown> => {
        if (down) throw new TypeError('fetch failed', { cause: refused });
        const res = await fetch(chain.rpcUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
        });
        const body: unknown = await res.json();
        if (typeof body !== 'object' || body === null || !('result' in body)) throw new Error(`rpc error: ${JSON.stringify(body)}`);
        return body.result;
      },
    });
    const s = new LocalExactEvmSettler({ network, client, privateKey: ANVIL_DEV_KEYS[8], clock: systemClock, sendTransport: flaky, receiptTimeoutMs: 2_000 });
    const [before = 0n] = await balances(PAY_TO);
    expect(await s.settle(await officialV2(), option)).toMatchObject({ success: false, reason: 'unexpected_settle_error', maybeOnChain: false });
    down = false;
    // Had the refused send's nonce been kept, this one would wait behind a gap and time out.
    expect(await s.settle(await officialV2(), option)).toMatchObject({ success: true });
    expect(await balances(PAY_TO)).toEqual([before + PRICE]);
  });

  describe('a send whose answer never comes', () => {
    let proxy: Server;
    let proxyUrl: string;
    /** `forward`: anvil gets the tx, the caller never hears back. `drop`: nobody gets it. */
    let mode: 'forward' | 'drop' = 'forward';
    beforeAll(async () => {
      const target = new URL(chain.rpcUrl);
      proxy = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks);
          const isSend = body.includes('eth_sendRawTransaction');
          if (isSend && mode === 'drop') return;
          const upstream = httpRequest(
            { host: target.hostname, port: target.port, method: 'POST', path: '/', headers: { 'content-type': 'application/json' } },
            (up) => {
              if (isSend) {
                up.resume();
                return;
              }
              res.writeHead(up.statusCode ?? 502, { 'content-type': 'application/json' });
              up.pipe(res);
            },
          );
          upstream.end(body);
        });
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const address = proxy.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      proxyUrl = `http://127.0.0.1:${address.port}`;
    });
    afterAll(async () => {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    });

    const silentSettler = (key: Hex, receiptTimeoutMs: number): LocalExactEvmSettler =>
      new LocalExactEvmSettler({
        network,
        client,
        privateKey: key,
        clock: systemClock,
        receiptTimeoutMs,
        sendTransport: rpcTransport({ ...network, rpc: [proxyUrl] }, { timeoutMs: 300, retryCount: 0, shouldThrow: (e) => !neverReachedNode(e) }),
      });

    it('the node got it: the receipt is found by the hash computed before sending, success', async () => {
      mode = 'forward';
      const [before = 0n] = await balances(PAY_TO);
      expect(await silentSettler(ANVIL_DEV_KEYS[9], 5_000).settle(await officialV2(), option)).toMatchObject({ success: true });
      expect(await balances(PAY_TO)).toEqual([before + PRICE]);
    });

    it('the node never got it: settlement_pending with the hash, then the next settlement is not stuck behind it', async () => {
      mode = 'drop';
      const s = silentSettler(ANVIL_DEV_KEYS[9], 700);
      const [before = 0n] = await balances(PAY_TO);
      const lost = await s.settle(await officialV2(), option);
      expect(lost).toMatchObject({ success: false, reason: 'settlement_pending', maybeOnChain: true });
      if (lost.success || lost.transaction === undefined) throw new Error('expected a tx hash');
      await expect(client.getTransaction({ hash: lost.transaction })).rejects.toThrow();

      mode = 'forward';
      expect(await s.settle(await officialV2(), option)).toMatchObject({ success: true });
      expect(await balances(PAY_TO)).toEqual([before + PRICE]);
    });
  });
});

describe('a settlement the node drops', () => {
  it('is sent again with the same signed bytes and lands once', async () => {
    const s = new LocalExactEvmSettler({ network, client, privateKey: SETTLER_KEY, clock: systemClock, receiptTimeoutMs: 10_000, rebroadcastAfterMs: 300 });
    const [before] = await balances(PAY_TO);
    await test().setAutomine(false);
    try {
      const settling = s.settle(await officialV2(), option);
      // The settlement reaches the pool; then the node forgets it.
      let hash: `0x${string}` | undefined;
      for (let i = 0; i < 100 && hash === undefined; i++) {
        const pending = await client.getBlock({ blockTag: 'pending' });
        hash = pending.transactions[0];
        if (hash === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      if (hash === undefined) throw new Error('the settlement never reached the pool');
      await test().dropTransaction({ hash });
      expect((await client.getBlock({ blockTag: 'pending' })).transactions).toEqual([]);
      // Within a re-broadcast slice the settler notices and hands the node the same transaction.
      for (let i = 0; i < 100; i++) {
        if ((await client.getBlock({ blockTag: 'pending' })).transactions.length > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect((await client.getBlock({ blockTag: 'pending' })).transactions).toEqual([hash]);
      await test().mine({ blocks: 1 });
      expect(await settling).toMatchObject({ success: true, transaction: hash });
    } finally {
      await test().setAutomine(true);
    }
    expect(await balances(PAY_TO)).toEqual([(before ?? 0n) + PRICE]);
  });
});

describe('the write-ahead settlement log and its reconciler', () => {
  const REQUEST = 'req-logged';
  const context = { ...PAYMENT_CONTEXT, requestId: REQUEST };
  const pendingRow = (requestId: string): Receipt => ({
    time: Date.now(),
    requestId,
    route: 'GET /v1/weather',
    method: 'GET',
    path: '/v1/weather',
    amount: PRICE.toString(),
    asset: BASE_USDC,
    network: 'eip155:8453',
    payer: PAYER.address,
    nonce: '',
    transaction: '',
    status: 'pending',
    reason: '',
  });
  let ledger: SqliteLedger;
  beforeEach(() => {
    ledger = new SqliteLedger(':memory:');
  });
  afterEach(async () => {
    await test().setAutomine(true);
    await ledger.close();
  });

  it('logs the signed transaction before it is sent, with nonces from the store and the hash on the pending row', async () => {
    const key = ANVIL_DEV_KEYS[9];
    const s = new LocalExactEvmSettler({ network, client, privateKey: key, clock: systemClock, log: ledger });
    await ledger.record(pendingRow(REQUEST));
    const result = await s.settle(await officialV2(), option, context);
    if (!result.success) throw new Error(`settlement failed: ${JSON.stringify(result)}`);
    const [entry] = await ledger.openSettlements(8453, s.address, 10);
    expect(entry).toMatchObject({ requestIds: [REQUEST], payer: PAYER.address.toLowerCase(), payTo: PAY_TO.toLowerCase(), amount: PRICE.toString() });
    expect(entry?.transactions.map((t) => t.hash)).toEqual([result.transaction]);
    expect(entry?.nonce).toBe(await client.getTransactionCount({ address: s.address }) - 1);
    expect((await ledger.receipts({}))[0]?.transaction).toBe(result.transaction);
    // The store counts on from the chain's count: the next settlement reads no nonce from the node.
    expect(await ledger.takeNonce(8453, s.address)).toBe((entry?.nonce ?? 0) + 1);
  });

  it('replaces a settlement stuck below the going fee (same nonce, higher fee), and records the outcome once it is mined', async () => {
    // The settler's (and so the reconciler's) clock, moved ahead later; the log keeps real time.
    let ahead = 0;
    const clock = { nowSeconds: () => BigInt(Math.floor((Date.now() + ahead) / 1000)), nowMs: () => Date.now() + ahead };
    const s = new LocalExactEvmSettler({ network, client, privateKey: ANVIL_DEV_KEYS[8], clock, log: ledger, receiptTimeoutMs: 300 });
    await ledger.record(pendingRow(REQUEST));
    const [before] = await balances(PAY_TO);
    await test().setAutomine(false);
    const pending = await s.settle(await officialV2(), option, context);
    expect(pending).toMatchObject({ success: false, reason: 'settlement_pending', maybeOnChain: true });
    // The going fee jumps past what the settlement offered: the block leaves it out, and anvil
    // evicts it from its pool (sending the same bytes again would be refused).
    const base = (await client.getBlock()).baseFeePerGas ?? 1n;
    await admin.request({ method: 'anvil_setNextBlockBaseFeePerGas' as never, params: [toHex(base * 100n)] as never });
    await test().mine({ blocks: 1 });
    expect(await client.getTransactionCount({ address: s.address })).toBe((await ledger.openSettlements(8453, s.address, 1))[0]?.nonce);

    const reconciler = s.reconciler({ holder: 'test', replaceAfterMs: 60_000 });
    if (!reconciler) throw new Error('a settler with a log has a reconciler');
    await new Promise((r) => setTimeout(r, 1_100)); // past the fee estimate's cache
    await reconciler.tick();
    expect(reconciler.counters.replacements).toBe(0); // gone from the pool, but not yet for REBROADCAST_AFTER_MS
    ahead = REBROADCAST_AFTER_MS;
    await reconciler.tick();
    expect(reconciler.counters.replacements).toBe(1);
    const [entry] = await ledger.openSettlements(8453, s.address, 10);
    expect(entry?.transactions).toHaveLength(2);
    expect(BigInt(entry?.transactions[1]?.maxFeePerGas ?? 0)).toBeGreaterThan(base * 100n);

    await test().mine({ blocks: 1 });
    await reconciler.tick();
    expect(await ledger.openSettlements(8453, s.address, 10)).toEqual([]);
    expect((await ledger.receipts({}))[0]).toMatchObject({ status: 'settled', reason: 'reconciled', transaction: entry?.transactions[1]?.hash });
    expect(reconciler.counters.settled).toBe(1);
    expect(await balances(PAY_TO)).toEqual([(before ?? 0n) + PRICE]);
  });

  it('fills a nonce taken and never sent, so the settlement queued behind it is mined', async () => {
    const s = new LocalExactEvmSettler({ network, client, privateKey: ANVIL_DEV_KEYS[6], clock: systemClock, log: ledger, receiptTimeoutMs: 300 });
    await ledger.record(pendingRow(REQUEST));
    await ledger.raiseNonceFloor(8453, s.address, await client.getTransactionCount({ address: s.address, blockTag: 'pending' }));
    const lost = await ledger.takeNonce(8453, s.address); // taken, then the replica died before logging it
    const [before] = await balances(PAY_TO);
    const stuck = await s.settle(await officialV2(), option, context);
    expect(stuck).toMatchObject({ success: false, reason: 'settlement_pending' });
    expect(await client.getTransactionCount({ address: s.address })).toBe(lost);

    const reconciler = s.reconciler({ holder: 'test', replaceAfterMs: 60_000, gapGraceMs: 0 });
    await reconciler?.tick();
    expect(reconciler?.counters.fillers).toBe(1);
    await waitFor(async () => (await client.getTransactionCount({ address: s.address })) === (lost ?? 0) + 2, 10_000, 50);
    await reconciler?.tick();
    expect((await ledger.receipts({}))[0]).toMatchObject({ status: 'settled', reason: 'reconciled' });
    expect(await balances(PAY_TO)).toEqual([(before ?? 0n) + PRICE]);
  });
});
