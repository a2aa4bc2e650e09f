/**
 * The fast verification path (a direct keccak EIP-712 digest and native libsecp256k1 recovery)
 * against viem's generic path (`hashTypedData`, `recoverTypedDataAddress`, `recoverAddress`), on
 * many random domains, authorizations and signatures, valid and not, plus the malformed and
 * malleable cases the gateway must refuse; and the telling apart of signature shapes, ERC-6492
 * wrappers well-formed or not.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { getAddress, hashTypedData, parseErc6492Signature, recoverTypedDataAddress, serializeErc6492Signature, zeroAddress, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import type { AssetConfig, NetworkConfig } from '../../src/config/types.js';
import { secp256k1Backend } from '../../src/payments/exact-evm/secp256k1-native.js';
import { classifySignature, recoverEcdsaSigner, recoverWithViem, splitEcdsa } from '../../src/payments/exact-evm/signature.js';
import {
  transferWithAuthorizationDigest,
  transferWithAuthorizationDigestBytes,
  transferWithAuthorizationTypedData,
} from '../../src/payments/exact-evm/typed-data.js';
import type { Eip3009Authorization } from '../../src/protocol/types.js';

/** The secp256k1 group order. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const hex = (bytes: number): Hex => `0x${randomBytes(bytes).toString('hex')}`;
const word = (value: bigint): string => value.toString(16).padStart(64, '0');
const randomUint = (bytes: number): bigint => BigInt(hex(bytes));

function network(chainId: number): NetworkConfig {
  return {
    name: 'n',
    caip2: `eip155:${chainId}`,
    chainId,
    v1Name: undefined,
    rpc: [],
    verify: 'local',
    settle: { mode: 'facilitator', facilitators: [] },
    multicall3: undefined,
    proofConfirmations: 1,
    proofMaxAgeSeconds: 3600,
  };
}

const NAMES = ['USD Coin', 'USDC', 'EURC', 'Bridged USDC (Stargate)', 'Ünïcødé ✓ token', '', 'a"b\\c|d'];

function randomAsset(): AssetConfig {
  return {
    id: 'x@n',
    network: network(randomInt(1, 2 ** 31)),
    address: getAddress(hex(20)),
    eip712Name: NAMES[randomInt(NAMES.length)] ?? 'USD Coin',
    eip712Version: String(randomInt(1, 5)),
    decimals: 6,
    symbol: 'X',
  };
}

function randomAuthorization(from: Hex): Eip3009Authorization {
  return {
    from,
    to: getAddress(hex(20)),
    // Small and huge values alike: the encoding must pad and not truncate.
    value: randomInt(2) === 0 ? BigInt(randomInt(1, 1_000_000_000)) : randomUint(32),
    validAfter: BigInt(randomInt(0, 2 ** 31)),
    validBefore: randomInt(2) === 0 ? BigInt(randomInt(0, 2 ** 40)) : randomUint(32),
    nonce: hex(32),
  };
}

/** A 65-byte signature from parts. */
const signatureOf = (r: bigint, s: bigint, v: number): Hex => `0x${word(r)}${word(s)}${v.toString(16).padStart(2, '0')}`;

describe('fast EIP-712 digest', () => {
  it('equals viem hashTypedData on many random domains and authorizations', () => {
    for (let i = 0; i < 300; i++) {
      const asset = randomAsset();
      const auth = randomAuthorization(getAddress(hex(20)));
      expect(transferWithAuthorizationDigest(asset, auth)).toBe(hashTypedData(transferWithAuthorizationTypedData(asset, auth)));
    }
  });

  it('keeps domains apart that differ only in case-insensitive ways or in a cached entry', () => {
    const asset = randomAsset();
    const auth = randomAuthorization(getAddress(hex(20)));
    const lower = { ...asset, address: asset.address.toLowerCase() as Hex };
    // Address case carries no meaning: the same digest.
    expect(transferWithAuthorizationDigest(lower, auth)).toBe(transferWithAuthorizationDigest(asset, auth));
    // The name does: a cached separator must not answer for another name.
    const renamed = { ...asset, eip712Name: `${asset.eip712Name}x` };
    expect(transferWithAuthorizationDigest(renamed, auth)).toBe(hashTypedData(transferWithAuthorizationTypedData(renamed, auth)));
    expect(transferWithAuthorizationDigest(renamed, auth)).not.toBe(transferWithAuthorizationDigest(asset, auth));
  });

  it('refuses values out of range and hex of the wrong length, as viem does', () => {
    const asset = randomAsset();
    const auth = randomAuthorization(getAddress(hex(20)));
    for (const bad of [
      { ...auth, value: 1n << 256n },
      { ...auth, validBefore: -1n },
      { ...auth, nonce: hex(31) },
      { ...auth, to: hex(19) },
    ]) {
      expect(() => transferWithAuthorizationDigestBytes(asset, bad)).toThrow(RangeError);
      expect(() => hashTypedData(transferWithAuthorizationTypedData(asset, bad))).toThrow();
    }
  });
});

describe('native signature recovery', () => {
  it.runIf(process.platform === 'linux' && process.arch === 'x64')('loads the prebuilt binary here', () => {
    expect(secp256k1Backend()).toEqual({ kind: 'native' });
  });

  it('recovers the signer of many random signed authorizations, as viem does', async () => {
    for (let i = 0; i < 200; i++) {
      const account = privateKeyToAccount(hex(32));
      const asset = randomAsset();
      const typed = transferWithAuthorizationTypedData(asset, randomAuthorization(account.address));
      const signature = await account.signTypedData(typed);
      const digest = transferWithAuthorizationDigest(asset, typed.message);
      const fast = await recoverEcdsaSigner(digest, signature);
      expect(fast).toBe(account.address);
      expect(fast).toBe(await recoverTypedDataAddress({ ...typed, signature }));
    }
  });

  it('agrees with viem on random (mostly forged) signatures', async () => {
    let recovered = 0;
    for (let i = 0; i < 500; i++) {
      const digest = hex(32);
      const s = randomUint(32) % (N / 2n); // low s: the only kind that reaches recovery
      const signature = signatureOf(randomUint(32), s, 27 + randomInt(2));
      const fast = await recoverEcdsaSigner(digest, signature);
      expect(fast).toBe(await recoverWithViem(digest, signature));
      if (fast !== undefined) recovered++;
    }
    // About half of random r values are x coordinates on the curve: both paths were exercised.
    expect(recovered).toBeGreaterThan(100);
    expect(recovered).toBeLessThan(400);
  });

  it('accepts v as 0/1 as well as 27/28', async () => {
    const account = privateKeyToAccount(hex(32));
    const digest = hex(32);
    const signature = await account.sign({ hash: digest });
    const { v } = splitEcdsa(signature);
    const short: Hex = `${signature.slice(0, 130)}0${v - 27}` as Hex;
    expect(await recoverEcdsaSigner(digest, short)).toBe(account.address);
  });

  it('refuses the high-s twin of a valid signature, which viem itself would accept', async () => {
    const account = privateKeyToAccount(hex(32));
    const digest = hex(32);
    const signature = await account.sign({ hash: digest });
    const { v, r, s } = splitEcdsa(signature);
    const twin = signatureOf(BigInt(r), N - BigInt(s), v === 27 ? 28 : 27);
    expect(await recoverWithViem(digest, twin)).toBe(account.address);
    expect(await recoverEcdsaSigner(digest, twin)).toBeUndefined();
    expect(await recoverEcdsaSigner(digest, signature)).toBe(account.address);
  });

  it('refuses bad v, zero or out-of-range r and s, and wrong lengths', async () => {
    const account = privateKeyToAccount(hex(32));
    const digest = hex(32);
    const signature = await account.sign({ hash: digest });
    const { r, s } = splitEcdsa(signature);
    const cases: Hex[] = [
      ...[2, 26, 29, 30, 255].map((v) => signatureOf(BigInt(r), BigInt(s), v)),
      signatureOf(0n, BigInt(s), 27),
      signatureOf(BigInt(r), 0n, 27),
      signatureOf(N, BigInt(s), 27),
      signatureOf(N + 1n, BigInt(s), 28),
      signatureOf((1n << 256n) - 1n, BigInt(s), 27),
      signatureOf(BigInt(r), N / 2n + 1n, 27),
      signatureOf(BigInt(r), N, 27),
      signature.slice(0, 130) as Hex, // 64 bytes
      `${signature}00`, // 66 bytes
      `0x${'zz'.repeat(65)}`,
    ];
    for (const bad of cases) {
      expect(await recoverEcdsaSigner(digest, bad), bad).toBeUndefined();
    }
    // A digest that is not 32 bytes recovers to nothing rather than to something else.
    expect(await recoverEcdsaSigner(hex(31), signature)).toBeUndefined();
  });
});

describe('classifySignature', () => {
  /** ERC-6492's magic suffix. */
  const MAGIC = '6492'.repeat(16);
  const FACTORY = getAddress('0x000000000000000000000000000000000000fac7');
  const inner = signatureOf(randomUint(32), 1n, 27);
  const wrapped = serializeErc6492Signature({ address: FACTORY, data: '0xdeadbeef', signature: inner });
  /** abi.encode(address, bytes, bytes)'s words, without 0x and suffix: factory, 2 offsets, data length, data, inner length, inner (3). */
  const words = wrapped.slice(2, -64).match(/.{64}/g) ?? [];
  const withWord = (index: number, value: bigint): Hex => `0x${words.map((w, i) => (i === index ? word(value) : w)).join('')}${MAGIC}`;

  it('tells 65-byte ECDSA, ERC-6492 wrappers and other bytes apart', () => {
    expect(classifySignature(inner)).toEqual({ kind: 'ecdsa', signature: inner });
    expect(classifySignature(wrapped)).toEqual({ kind: 'erc6492', inner, factory: FACTORY, factoryData: '0xdeadbeef' });
    const long: Hex = `0x${'ab'.repeat(100)}`;
    expect(classifySignature(long)).toEqual({ kind: 'bytes', signature: long });
    // As the reference: a wrapper naming the zero address as factory is no wrapper, just bytes.
    const zero = serializeErc6492Signature({ address: zeroAddress, data: '0xdeadbeef', signature: inner });
    expect(classifySignature(zero)).toEqual({ kind: 'bytes', signature: zero });
  });

  // Regression: these made viem's parseErc6492Signature throw out of verification (a 500).
  const malformed: readonly (readonly [string, Hex])[] = [
    ['garbage inside the wrapper', `0x${'ab'.repeat(200)}${MAGIC}`],
    ['an ECDSA signature with the suffix appended, no ABI encoding', `${inner}${MAGIC}`],
    ['truncated: a wrapper cut off after its head', `0x${wrapped.slice(2, 2 + 64 * 5)}${MAGIC}`],
    ['truncated: 33 zero bytes and the suffix (the shortest signature the decoder accepts)', `0x${'00'.repeat(33)}${MAGIC}`],
    ['truncated: the suffix alone', `0x${MAGIC}`],
    ['huge: an inner length of 2^256 - 1', withWord(5, 2n ** 256n - 1n)],
    ['huge: an inner length past the end, in the safe-integer range', withWord(5, 1_000_000n)],
    ['huge: a data offset of 2^256 - 1', withWord(1, 2n ** 256n - 1n)],
    ['an inner offset past the end', withWord(2, 0x10000n)],
  ];

  it.each(malformed)('a malformed wrapper is `malformed`, never a throw: %s', (_name, signature) => {
    expect(() => parseErc6492Signature(signature)).toThrow();
    expect(classifySignature(signature)).toEqual({ kind: 'malformed', signature });
  });

  it('follows viem (and so the reference) where its decoder is lenient: the suffix may be read as inner-signature bytes', () => {
    // The inner signature's last padded word cut off: its 65 bytes now end in the suffix's first byte.
    const cut: Hex = `0x${wrapped.slice(2, -64 * 2)}${MAGIC}`;
    expect(classifySignature(cut)).toEqual({ kind: 'erc6492', inner: `0x${inner.slice(2, 130)}64`, factory: FACTORY, factoryData: '0xdeadbeef' });
  });

  it('never throws on random bytes or random corruptions of a wrapper, and is `malformed` exactly when viem cannot parse it', () => {
    const parses = (signature: Hex): boolean => {
      try {
        parseErc6492Signature(signature);
        return true;
      } catch {
        return false;
      }
    };
    const samples: Hex[] = [];
    for (let i = 0; i < 300; i++) samples.push(`${hex(randomInt(1, 400))}${MAGIC}`);
    for (let i = 0; i < 300; i++) {
      const body = words.slice();
      body[randomInt(body.length)] = word(randomInt(2) === 0 ? BigInt(randomInt(0, 1024)) : randomUint(32));
      samples.push(`0x${body.join('')}${MAGIC}`);
    }
    for (const signature of samples) {
      const shape = classifySignature(signature);
      expect(shape.kind === 'malformed', signature).toBe(!parses(signature));
    }
  });
});
