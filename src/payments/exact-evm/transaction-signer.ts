/**
 * Signs the settlement transactions of the gateway's own key.
 *
 * viem's `account.signTransaction` signs with @noble/curves in JavaScript, about 1 ms of CPU per
 * settlement; here the hash is signed by native libsecp256k1 (~0.05 ms) and the transaction
 * serialised by viem, before and after, exactly as `signTransaction` does. Both curve libraries
 * use RFC 6979 deterministic nonces and low-s signatures, so the bytes are identical (a unit test
 * compares them); without the native binary, viem signs.
 */
import { bytesToHex, keccak256, serializeTransaction, type TransactionSerializable } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import { nativeSecp256k1 } from './secp256k1-native.js';

export interface TransactionSigner {
  /** The account whose key signs, and which pays the gas. */
  readonly address: Address;
  /** The signed transaction, serialised, ready for `eth_sendRawTransaction`. */
  sign(tx: TransactionSerializable): Promise<Hex>;
}

export function createTransactionSigner(privateKey: Hex): TransactionSigner {
  const account = privateKeyToAccount(privateKey);
  const lib = nativeSecp256k1();
  if (lib === undefined) return { address: account.address, sign: (tx) => account.signTransaction(tx) };
  const key = Buffer.from(privateKey.slice(2), 'hex');
  return {
    address: account.address,
    sign: async (tx) => {
      const { signature, recid } = lib.ecdsaSign(keccak256(serializeTransaction(tx), 'bytes'), key);
      const yParity = recid;
      return serializeTransaction(tx, {
        r: bytesToHex(signature.subarray(0, 32)),
        s: bytesToHex(signature.subarray(32, 64)),
        // Legacy transactions derive EIP-155's v from this; typed ones use yParity.
        v: BigInt(27 + yParity),
        yParity,
      });
    },
  };
}
