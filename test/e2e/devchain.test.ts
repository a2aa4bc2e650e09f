/**
 * The dev chain and TestUsdc, for real: anvil on Base's chain id, the token planted at Base's USDC
 * address with anvil_setCode, EIP-3009 authorizations signed by viem and by the official x402
 * client, submitted by a different account (the settler) as the gateway will.
 */
import { authorizationTypes } from '@x402/evm';
import type { PaymentRequirements } from '@x402/core/types';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import {
  domainSeparator,
  encodeFunctionData,
  multicall3Abi,
  numberToHex,
  toFunctionSelector,
  parseSignature,
  serializeSignature,
  type Abi,
  type AbiParameter,
  type Address,
  type Hex,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANVIL_DEV_KEYS,
  createDevChainClient,
  startAnvil,
  type DevChain,
  type DevChainClient,
} from '../../src/tools/devchain/anvil.js';
import { compileMulticall3, installMulticall3, MULTICALL3_ADDRESS } from '../../src/tools/devchain/multicall.js';
import {
  BASE_USDC,
  compileSolidity,
  compileTestUsdc,
  installTestUsdc,
  mintTestUsdc,
  TEST_USDC_ABI,
  usdcBalance,
} from '../../src/tools/devchain/token.js';

const CHAIN_ID = 8453;
const DOMAIN = { name: 'USD Coin', version: '2', chainId: CHAIN_ID, verifyingContract: BASE_USDC } as const;

/** secp256k1's group order: s and n - s are both valid for one signature (EIP-2 allows only the low one). */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** The smallest ERC-1271 wallet: it accepts what its owner's key signs. */
const OWNER_WALLET_SOURCE = `
// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;
contract OwnerWallet {
    address private immutable owner;
    constructor(address owner_) { owner = owner_; }
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        address signer = ecrecover(digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64]));
        return signer == owner && signer != address(0) ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}
`;

interface Authorization {
  readonly from: Address;
  readonly to: Address;
  readonly value: bigint;
  readonly validAfter: bigint;
  readonly validBefore: bigint;
  readonly nonce: Hex;
}

let chain: DevChain;
let settler: DevChainClient;
const payer = privateKeyToAccount(ANVIL_DEV_KEYS[1]);
const payee = privateKeyToAccount(ANVIL_DEV_KEYS[2]).address;

beforeAll(async () => {
  chain = await startAnvil({ chainId: CHAIN_ID });
  settler = createDevChainClient(chain, ANVIL_DEV_KEYS[0]);
  await installTestUsdc(settler, { at: BASE_USDC });
  await mintTestUsdc(settler, { token: BASE_USDC, to: payer.address, amount: 100_000_000n });
});

afterAll(async () => {
  await chain?.stop();
});

async function authorization(overrides: Partial<Authorization> = {}): Promise<Authorization> {
  const now = (await settler.getBlock()).timestamp;
  return {
    from: payer.address,
    to: payee,
    value: 10_000n,
    validAfter: 0n,
    validBefore: now + 600n,
    nonce: generatePrivateKey(), // any 32 random bytes
    ...overrides,
  };
}

function sign(auth: Authorization, signer: PrivateKeyAccount = payer): Promise<Hex> {
  return signer.signTypedData({
    domain: DOMAIN,
    types: authorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: auth,
  });
}

/** Submits with the (v, r, s) overload, as most facilitators do. */
async function settleVrs(auth: Authorization, signature: Hex): Promise<void> {
  const { v, r, s } = parseSignature(signature);
  if (v === undefined) throw new Error('expected a 65-byte signature with v');
  const hash = await settler.writeContract({
    address: BASE_USDC,
    abi: TEST_USDC_ABI,
    functionName: 'transferWithAuthorization',
    args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, Number(v), r, s],
  });
  expect((await settler.waitForTransactionReceipt({ hash })).status).toBe('success');
}

/** Submits with the `bytes signature` overload (FiatToken v2.2). */
async function settleBytes(auth: Authorization, signature: Hex): Promise<void> {
  const hash = await settler.writeContract({
    address: BASE_USDC,
    abi: TEST_USDC_ABI,
    functionName: 'transferWithAuthorization',
    args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature],
  });
  expect((await settler.waitForTransactionReceipt({ hash })).status).toBe('success');
}

async function balances(): Promise<{ payer: bigint; payee: bigint; settler: bigint }> {
  const [p, q, s] = await Promise.all([
    usdcBalance(settler, BASE_USDC, payer.address),
    usdcBalance(settler, BASE_USDC, payee),
    usdcBalance(settler, BASE_USDC, settler.account.address),
  ]);
  return { payer: p, payee: q, settler: s };
}

function signatureOf(item: Abi[number]): string {
  const types = (params: readonly AbiParameter[] | undefined): string => (params ?? []).map((p) => p.type).join(',');
  const name = 'name' in item ? item.name : '';
  const mutability = 'stateMutability' in item ? item.stateMutability : '';
  const outputs = 'outputs' in item ? types(item.outputs) : '';
  const inputs = 'inputs' in item ? types(item.inputs) : '';
  return `${item.type} ${name}(${inputs}) ${mutability} -> (${outputs})`;
}

describe('TestUsdc planted at Base USDC on a local chain 8453', () => {
  it('looks like USDC, with the EIP-712 domain of its new address and chain', async () => {
    const read = <F extends 'name' | 'version' | 'symbol'>(functionName: F) =>
      settler.readContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName });
    expect(await read('name')).toBe('USD Coin');
    expect(await read('version')).toBe('2');
    expect(await read('symbol')).toBe('USDC');
    expect(await settler.readContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName: 'decimals' })).toBe(6);
    // Computed per call from address(this) and block.chainid, so it follows the code to its new home.
    expect(await settler.readContract({ address: BASE_USDC, abi: TEST_USDC_ABI, functionName: 'DOMAIN_SEPARATOR' })).toBe(
      domainSeparator({ domain: DOMAIN }),
    );
  });

  it('has the interface TEST_USDC_ABI declares, per the compiler', () => {
    const compiled = compileTestUsdc().abi.map(signatureOf).sort();
    expect(TEST_USDC_ABI.map(signatureOf).sort()).toEqual(compiled);
  });

  it('moves exactly the authorized value when a different account submits it (v, r, s)', async () => {
    const auth = await authorization();
    const before = await balances();
    await settleVrs(auth, await sign(auth));
    expect(await balances()).toEqual({
      payer: before.payer - auth.value,
      payee: before.payee + auth.value,
      settler: before.settler,
    });
    expect(
      await settler.readContract({
        address: BASE_USDC,
        abi: TEST_USDC_ABI,
        functionName: 'authorizationState',
        args: [payer.address, auth.nonce],
      }),
    ).toBe(true);

    // The same authorization again: the nonce is spent.
    await expect(settleVrs(auth, await sign(auth))).rejects.toThrow(/authorization is used or canceled/);
  });

  it('refuses an authorization outside its validity window', async () => {
    const now = (await settler.getBlock()).timestamp;
    const expired = await authorization({ validBefore: now - 1n });
    await expect(settleVrs(expired, await sign(expired))).rejects.toThrow(/authorization is expired/);
    const early = await authorization({ validAfter: now + 3_600n, validBefore: now + 7_200n });
    await expect(settleVrs(early, await sign(early))).rejects.toThrow(/authorization is not yet valid/);
  });

  it('refuses tampered, foreign and malleable signatures', async () => {
    const auth = await authorization();
    const signature = await sign(auth);
    await expect(settleVrs({ ...auth, value: auth.value + 1n }, signature)).rejects.toThrow(/invalid signature/);
    await expect(settleVrs(auth, await sign(auth, privateKeyToAccount(ANVIL_DEV_KEYS[3])))).rejects.toThrow(
      /invalid signature/,
    );

    // The high-s twin recovers to the same address; USDC refuses it, and so must we.
    const { r, s, yParity } = parseSignature(signature);
    const twin = serializeSignature({ r, s: numberToHex(SECP256K1_N - BigInt(s), { size: 32 }), yParity: 1 - yParity });
    await expect(settleBytes(auth, twin)).rejects.toThrow(/invalid signature 's' value/);

    // The genuine signature still works afterwards: nothing above spent the nonce.
    await settleVrs(auth, signature);
  });

  it('accepts the bytes-signature overload', async () => {
    const auth = await authorization({ value: 12_345n });
    const before = await balances();
    await settleBytes(auth, await sign(auth));
    expect((await balances()).payee).toBe(before.payee + 12_345n);
  });

  it('asks a contract wallet (ERC-1271) instead of recovering an ECDSA signer', async () => {
    const owner = privateKeyToAccount(ANVIL_DEV_KEYS[4]);
    const wallet = compileSolidity(OWNER_WALLET_SOURCE, 'OwnerWallet');
    const deployed = await settler.waitForTransactionReceipt({
      hash: await settler.deployContract({ abi: wallet.abi, bytecode: wallet.bytecode, args: [owner.address] }),
    });
    const from = deployed.contractAddress;
    if (from == null) throw new Error('wallet deployment failed');
    await mintTestUsdc(settler, { token: BASE_USDC, to: from, amount: 1_000_000n });

    const auth = await authorization({ from });
    await expect(settleVrs(auth, await sign(auth, privateKeyToAccount(ANVIL_DEV_KEYS[5])))).rejects.toThrow(
      /invalid signature/,
    );
    await settleBytes(auth, await sign(auth, owner));
    expect(await usdcBalance(settler, BASE_USDC, from)).toBe(1_000_000n - auth.value);
  });

  it('accepts what the official @x402/evm client signs', async () => {
    const requirements: PaymentRequirements = {
      scheme: 'exact',
      network: 'eip155:8453',
      amount: '10000',
      asset: BASE_USDC,
      payTo: payee,
      maxTimeoutSeconds: 300,
      extra: { name: 'USD Coin', version: '2' },
    };
    const result = await new ExactEvmScheme(payer).createPaymentPayload(2, requirements);
    const { authorization: raw, signature } = result.payload;
    if (!isAuthorizationJson(raw) || !isHex(signature)) {
      throw new Error(`unexpected payload ${JSON.stringify(result.payload)}`);
    }
    const auth: Authorization = {
      from: raw.from,
      to: raw.to,
      value: BigInt(raw.value),
      validAfter: BigInt(raw.validAfter),
      validBefore: BigInt(raw.validBefore),
      nonce: raw.nonce,
    };

    const before = await balances();
    await settleBytes(auth, signature);
    expect((await balances()).payee).toBe(before.payee + 10_000n);
  });
});

describe('Multicall3 planted at its canonical address', () => {
  /** Multicall3's functions, as deployed on Base and most EVM chains. */
  const CANONICAL = [
    'aggregate((address,bytes)[])',
    'aggregate3((address,bool,bytes)[])',
    'aggregate3Value((address,bool,uint256,bytes)[])',
    'blockAndAggregate((address,bytes)[])',
    'getBasefee()',
    'getBlockHash(uint256)',
    'getBlockNumber()',
    'getChainId()',
    'getCurrentBlockCoinbase()',
    'getCurrentBlockDifficulty()',
    'getCurrentBlockGasLimit()',
    'getCurrentBlockTimestamp()',
    'getEthBalance(address)',
    'getLastBlockHash()',
    'tryAggregate(bool,(address,bytes)[])',
    'tryBlockAndAggregate(bool,(address,bytes)[])',
  ];

  it('has every function of Multicall3, by selector', () => {
    const selectors = compileMulticall3()
      .abi.filter((item) => item.type === 'function')
      .map((item) => toFunctionSelector(item));
    expect(selectors.sort()).toEqual(CANONICAL.map((f) => toFunctionSelector(`function ${f}`)).sort());
  });

  it('aggregate3 answers each call, and reports a failing one without reverting the others', async () => {
    await installMulticall3(settler);
    const results = await settler.readContract({
      address: MULTICALL3_ADDRESS,
      abi: multicall3Abi,
      functionName: 'aggregate3',
      args: [
        [
          { target: BASE_USDC, allowFailure: true, callData: encodeFunctionData({ abi: TEST_USDC_ABI, functionName: 'decimals' }) },
          // No such function on the token: it reverts.
          { target: BASE_USDC, allowFailure: true, callData: '0xdeadbeef' },
        ],
      ],
    });
    expect(results.map((r) => r.success)).toEqual([true, false]);
    expect(BigInt(results[0]?.returnData ?? '0x')).toBe(6n);
  });
});

describe('installTestUsdc with a custom EIP-712 domain', () => {
  async function domainOf(token: Address) {
    const [name, version, separator] = await Promise.all([
      settler.readContract({ address: token, abi: TEST_USDC_ABI, functionName: 'name' }),
      settler.readContract({ address: token, abi: TEST_USDC_ABI, functionName: 'version' }),
      settler.readContract({ address: token, abi: TEST_USDC_ABI, functionName: 'DOMAIN_SEPARATOR' }),
    ]);
    const expected = domainSeparator({ domain: { name, version, chainId: CHAIN_ID, verifyingContract: token } });
    return { name, version, separatorMatches: separator === expected };
  }

  it('deploys with the constructor', async () => {
    const token = await installTestUsdc(settler, { name: 'Test Dollar', version: '7' });
    expect(await domainOf(token)).toEqual({ name: 'Test Dollar', version: '7', separatorMatches: true });
  });

  it('plants the code and initialises it once', async () => {
    const at: Address = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'; // Base Sepolia USDC
    await installTestUsdc(settler, { at, name: 'USDC' });
    expect(await domainOf(at)).toEqual({ name: 'USDC', version: '2', separatorMatches: true });
    await expect(installTestUsdc(settler, { at, name: 'Other' })).rejects.toThrow(/already initialized/);
  });
});

describe('startAnvil', () => {
  it('picks a free port, defaults to chain id 8453 and stops idempotently', async () => {
    const other = await startAnvil();
    expect(other.chainId).toBe(8453);
    expect(other.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(other.rpcUrl).not.toBe(chain.rpcUrl);
    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    expect(other.process.exitCode !== null || other.process.signalCode !== null).toBe(true);
    await expect(fetch(other.rpcUrl, { method: 'POST' })).rejects.toThrow();
  });
});

interface AuthorizationJson {
  from: Address;
  to: Address;
  value: string;
  validAfter: string;
  validBefore: string;
  nonce: Hex;
}

function isHex(value: unknown): value is Hex {
  return typeof value === 'string' && /^0x[0-9a-fA-F]*$/.test(value);
}

function isAuthorizationJson(value: unknown): value is AuthorizationJson {
  if (typeof value !== 'object' || value === null) return false;
  const get = (key: string): unknown => Reflect.get(value, key);
  return (
    isHex(get('from')) &&
    isHex(get('to')) &&
    isHex(get('nonce')) &&
    ['value', 'validAfter', 'validBefore'].every((key) => {
      const value = get(key);
      return typeof value === 'string' && /^\d+$/.test(value);
    })
  );
}
