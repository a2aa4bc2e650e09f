/**
 * The settler's two CPU shortcuts, checked against what they replace: transactions signed by
 * native libsecp256k1 are byte-for-byte viem's, and nonces handed out locally are consecutive and
 * re-read when asked to.
 */
import { keccak256, toHex, type TransactionSerializable } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { GAS_HEADROOM_PERCENT, overCapMessage, settlementGasLimit } from '../../src/payments/exact-evm/gas-limit.js';
import { MinedNonceGate } from '../../src/payments/exact-evm/mined-nonce-gate.js';
import { NONCE_REFRESH_MS, NonceAllocator } from '../../src/payments/exact-evm/nonce-allocator.js';
import { outbid } from '../../src/payments/exact-evm/reconciler.js';
import { secp256k1Backend } from '../../src/payments/exact-evm/secp256k1-native.js';
import { createTransactionSigner } from '../../src/payments/exact-evm/transaction-signer.js';

describe('createTransactionSigner', () => {
  it('runs on the native binding here (the fast path is what is tested)', () => {
    expect(secp256k1Backend()).toEqual({ kind: 'native' });
  });

  it('produces exactly the bytes viem signs, for EIP-1559 and legacy transactions', async () => {
    for (let i = 0; i < 200; i++) {
      const key = generatePrivateKey();
      const seed = BigInt(keccak256(toHex(i)));
      const common = {
        chainId: [1, 8453, 84532, 31337][i % 4]!,
        to: privateKeyToAccount(generatePrivateKey()).address,
        data: keccak256(toHex(i * 7)),
        gas: 50_000n + (seed % 100_000n),
        nonce: i * 13,
      };
      const tx: TransactionSerializable =
        i % 3 === 0
          ? { ...common, type: 'legacy', gasPrice: 1n + (seed % 10n ** 11n) }
          : { ...common, type: 'eip1559', maxFeePerGas: 2n + (seed % 10n ** 11n), maxPriorityFeePerGas: 1n + (seed % 1000n) };
      const signer = createTransactionSigner(key);
      expect(signer.address).toBe(privateKeyToAccount(key).address);
      expect(await signer.sign(tx)).toBe(await privateKeyToAccount(key).signTransaction(tx));
    }
  });
});

describe('NonceAllocator', () => {
  function counting(start: number) {
    const reads: number[] = [];
    let next = start;
    return {
      reads,
      setPending: (n: number) => (next = n),
      read: async () => {
        reads.push(next);
        return next;
      },
    };
  }

  it('reads the pending count once and hands out consecutive nonces, also to concurrent takers', async () => {
    let now = 0;
    const nonces = new NonceAllocator(() => now);
    const node = counting(7);
    expect(await Promise.all([nonces.take(node.read), nonces.take(node.read), nonces.take(node.read)])).toEqual([7, 8, 9]);
    expect(await nonces.take(node.read)).toBe(10);
    expect(node.reads).toEqual([7]);
    now += NONCE_REFRESH_MS - 1;
    expect(await nonces.take(node.read)).toBe(11);
    expect(node.reads).toHaveLength(1);
  });

  it('re-reads after reset and once the count is older than NONCE_REFRESH_MS', async () => {
    let now = 0;
    const nonces = new NonceAllocator(() => now);
    const node = counting(3);
    expect(await nonces.take(node.read)).toBe(3);
    node.setPending(3); // the transaction never arrived
    nonces.reset();
    expect(await nonces.take(node.read)).toBe(3);
    node.setPending(9); // someone else used the key
    now += NONCE_REFRESH_MS;
    expect(await nonces.take(node.read)).toBe(9);
    expect(node.reads).toEqual([3, 3, 9]);
  });

  it('a periodic refresh never hands out a nonce again that is taken but not yet in the node\'s count', async () => {
    let now = 0;
    const nonces = new NonceAllocator(() => now);
    const node = counting(3);
    expect(await Promise.all([nonces.take(node.read), nonces.take(node.read)])).toEqual([3, 4]);
    now += NONCE_REFRESH_MS; // neither send has reached the node yet: it still says 3
    expect(await nonces.take(node.read)).toBe(5);
    expect(node.reads).toEqual([3, 3]);
  });

  it('does not keep a failed read', async () => {
    const nonces = new NonceAllocator(() => 0);
    await expect(nonces.take(() => Promise.reject(new Error('rpc down')))).rejects.toThrow('rpc down');
    expect(await nonces.take(async () => 5)).toBe(5);
  });
});

describe('MinedNonceGate', () => {
  it('answers every waiter from one read of the mined count, re-read once older than maxAgeMs', async () => {
    let now = 0;
    const gate = new MinedNonceGate(() => now, 4);
    let reads = 0;
    let mined = 5;
    const read = async () => {
      reads++;
      return mined;
    };
    expect(await Promise.all([gate.mayBeMined(3, read), gate.mayBeMined(4, read), gate.mayBeMined(5, read), gate.mayBeMined(9, read)])).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(reads).toBe(1);
    mined = 10;
    now += 3;
    expect(await gate.mayBeMined(9, read)).toBe(false); // still the read of 3 ms ago
    now += 1;
    expect(await gate.mayBeMined(9, read)).toBe(true);
    expect(reads).toBe(2);
  });

  it('says "ask for the receipt" when the count cannot be read', async () => {
    const gate = new MinedNonceGate(() => 0, 4);
    expect(await gate.mayBeMined(1, () => Promise.reject(new Error('rpc down')))).toBe(true);
  });
});

describe('settlementGasLimit: the estimate sets the gas limit only up to settle.maxGas', () => {
  const CAP = 150_000n;

  it('pads an estimate well under the cap by the headroom (a USDC transfer: ~90k)', () => {
    expect(GAS_HEADROOM_PERCENT).toBe(25n);
    expect(settlementGasLimit(90_390n, CAP)).toEqual({ kind: 'limit', gas: 112_987n });
  });

  it('gives the cap, never more, when the headroom would cross it', () => {
    expect(settlementGasLimit(136_000n, CAP)).toEqual({ kind: 'limit', gas: CAP });
    expect(settlementGasLimit(CAP, CAP)).toEqual({ kind: 'limit', gas: CAP });
  });

  it('refuses an estimate over the cap: nothing is to be sent', () => {
    const over = settlementGasLimit(5_075_604n, CAP);
    expect(over).toEqual({ kind: 'over_cap', estimate: 5_075_604n, maxGas: CAP });
    expect(settlementGasLimit(CAP + 1n, CAP).kind).toBe('over_cap');
    if (over.kind === 'over_cap') expect(overCapMessage(over)).toBe('the settlement would need 5075604 gas, over settle.maxGas (150000)');
  });

  it('never gives a limit above the cap nor below the estimate, for any estimate up to it', () => {
    for (let estimate = 0n; estimate <= CAP; estimate += 997n) {
      const limit = settlementGasLimit(estimate, CAP);
      if (limit.kind !== 'limit') throw new Error(`refused ${estimate}`);
      expect(limit.gas <= CAP && limit.gas >= estimate).toBe(true);
    }
  });
});

describe('outbid (a replacement\'s fees)', () => {
  const tx = { hash: '0x01', raw: '0x02', maxFeePerGas: '1000', maxPriorityFeePerGas: '100' } as const;

  it('none while the going fee is not above what the transaction offered', () => {
    expect(outbid(tx, { type: 'eip1559', maxFeePerGas: 1000n, maxPriorityFeePerGas: 100n })).toBeUndefined();
    expect(outbid(tx, { type: 'eip1559', maxFeePerGas: 900n, maxPriorityFeePerGas: 50n })).toBeUndefined();
    expect(outbid(tx, { type: 'legacy', gasPrice: 1000n })).toBeUndefined();
  });

  it('the going fee, and at least 12.5% over each old fee (nodes refuse smaller bumps), rounded up', () => {
    expect(outbid(tx, { type: 'eip1559', maxFeePerGas: 1001n, maxPriorityFeePerGas: 100n })).toEqual({ type: 'eip1559', maxFeePerGas: 1125n, maxPriorityFeePerGas: 113n });
    expect(outbid(tx, { type: 'eip1559', maxFeePerGas: 5000n, maxPriorityFeePerGas: 300n })).toEqual({ type: 'eip1559', maxFeePerGas: 5000n, maxPriorityFeePerGas: 300n });
    expect(outbid(tx, { type: 'legacy', gasPrice: 1001n })).toEqual({ type: 'legacy', gasPrice: 1125n });
  });
});
