/**
 * Telling signature kinds apart and ECDSA recovery. Pure (CPU only, no chain).
 *
 * Recovery runs on native libsecp256k1 (the `secp256k1` package's prebuilt N-API binary): about
 * 0.05 ms, against 2 to 3 ms for viem's pure-JavaScript path, which made signature recovery the
 * largest single cost of a paid request. When the binary cannot be loaded on this platform, viem's
 * path is used instead, with one process warning; answers are the same either way (a unit test
 * cross-checks the two on many random and malformed signatures).
 */
import { checksumAddress, isAddressEqual, isErc6492Signature, keccak256, parseErc6492Signature, recoverAddress, zeroAddress } from 'viem';
import type { Address } from '../../config/types.js';
import type { Hex } from '../../protocol/types.js';
import { nativeSecp256k1, type NativeSecp256k1 } from './secp256k1-native.js';

/**
 * - `ecdsa`: exactly 65 bytes, what an ordinary account (EOA) produces.
 * - `erc6492`: a smart-wallet signature wrapped with the wallet's factory and deployment calldata,
 *   for a wallet that may not be deployed yet; `inner` is what the wallet itself checks.
 * - `bytes`: anything else; only a contract wallet (ERC-1271) can accept it.
 * - `malformed`: ends with ERC-6492's magic suffix but does not decode as its
 *   `abi.encode(factory, factoryCalldata, innerSig)`. Invalid whoever the payer is: ERC-6492's
 *   validator reverts on it, and no wallet may be asked about it.
 */
export type SignatureShape =
  | { readonly kind: 'ecdsa'; readonly signature: Hex }
  | { readonly kind: 'erc6492'; readonly inner: Hex; readonly factory: Address; readonly factoryData: Hex }
  | { readonly kind: 'bytes'; readonly signature: Hex }
  | { readonly kind: 'malformed'; readonly signature: Hex };

const ECDSA_HEX_LENGTH = 2 + 65 * 2;

/**
 * As the reference: a 6492 wrapper counts only when it names a non-zero factory, and it is
 * decoded with viem's `parseErc6492Signature`, as `@x402/evm` decodes it. Never throws: the
 * signature is the payer's to choose, and viem's decoder throws on a wrapper whose offsets or
 * lengths point outside it (the reference lets that throw, so its facilitator answers 500).
 */
export function classifySignature(signature: Hex): SignatureShape {
  if (isErc6492Signature(signature)) {
    const parsed = parseErc6492(signature);
    if (parsed === undefined) return { kind: 'malformed', signature };
    if (parsed.address !== undefined && parsed.data !== undefined && !isAddressEqual(parsed.address, zeroAddress)) {
      return { kind: 'erc6492', inner: parsed.signature, factory: parsed.address, factoryData: parsed.data };
    }
  }
  return signature.length === ECDSA_HEX_LENGTH ? { kind: 'ecdsa', signature } : { kind: 'bytes', signature };
}

/**
 * viem's parse, or `undefined` when the wrapper does not decode. Every throw means that: the
 * parse is pure, so there is no fault to tell apart (viem throws several error classes for it:
 * positions out of bounds, lengths past the safe-integer range, data too short).
 */
function parseErc6492(signature: Hex): ReturnType<typeof parseErc6492Signature> | undefined {
  try {
    return parseErc6492Signature(signature);
  } catch {
    return undefined;
  }
}

/** secp256k1n / 2. A larger `s` is the malleable twin of a valid signature (EIP-2). */
const MAX_LOW_S = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** r, s and v (27 or 28) of a 65-byte signature, as the token's `(v, r, s)` overload takes them. */
export function splitEcdsa(signature: Hex): { readonly v: number; readonly r: Hex; readonly s: Hex } {
  const r: Hex = `0x${signature.slice(2, 66)}`;
  const s: Hex = `0x${signature.slice(66, 130)}`;
  const last = Number.parseInt(signature.slice(130, 132), 16);
  // Some signers emit the recovery bit as 0/1; USDC's ecrecover wants 27/28.
  return { v: last < 27 ? last + 27 : last, r, s };
}

/**
 * The address a 65-byte signature of `digest` recovers to, or `undefined` when it recovers to
 * nothing, or when USDC's `ECRecover` would refuse it on chain (high `s`, `v` not 27/28). The
 * reference facilitator does not check the last two at verify time; the settlement then reverts,
 * so refusing them here only moves the same answer earlier.
 */
export async function recoverEcdsaSigner(digest: Hex, signature: Hex): Promise<Address | undefined> {
  if (signature.length !== ECDSA_HEX_LENGTH) return undefined;
  const { v, s } = splitEcdsa(signature);
  if (v !== 27 && v !== 28) return undefined;
  if (BigInt(s) > MAX_LOW_S) return undefined;
  const native = nativeSecp256k1();
  if (native !== undefined) return recoverNative(native, digest, signature, v - 27);
  return recoverWithViem(digest, signature);
}

/** viem's pure-JavaScript recovery: the fallback, and the reference the fast path is tested against. */
export async function recoverWithViem(digest: Hex, signature: Hex): Promise<Address | undefined> {
  try {
    return await recoverAddress({ hash: digest, signature });
  } catch {
    return undefined;
  }
}

/**
 * libsecp256k1 recovery: the 64-byte compact signature r ‖ s with recovery id 0 or 1, then the
 * address is the last 20 bytes of keccak256 of the uncompressed public key without its 0x04
 * prefix. The library refuses r or s of zero or not below the curve order, and an r that is not
 * an x coordinate on the curve; those, like viem's refusals, mean "recovers to nothing".
 */
function recoverNative(lib: NativeSecp256k1, digest: Hex, signature: Hex, recid: number): Address | undefined {
  const message = Buffer.from(digest.slice(2), 'hex');
  const compact = Buffer.from(signature.slice(2, 130), 'hex');
  if (message.length !== 32 || compact.length !== 64 || digest.length !== 66) return undefined;
  let publicKey: Uint8Array;
  try {
    publicKey = lib.ecdsaRecover(compact, recid, message, false);
  } catch {
    return undefined;
  }
  const hash = keccak256(publicKey.subarray(1), 'bytes');
  return checksumAddress(`0x${Buffer.from(hash.subarray(12)).toString('hex')}`);
}
