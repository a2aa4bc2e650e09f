/**
 * The native libsecp256k1 binding (the `secp256k1` package's prebuilt N-API binary), loaded once,
 * for the two curve operations on the paid path: recovering a payer's key from a signature
 * (~0.05 ms against 2 to 3 ms in viem's pure JavaScript) and signing the settlement transaction
 * (~0.05 ms against ~1 ms). When the binary cannot be loaded on this platform, callers use
 * viem's path instead, with one process warning; answers are the same either way (unit tests
 * cross-check both operations against viem).
 */
import { createRequire } from 'node:module';

/** The functions of the binding used here (`secp256k1` 5.x, `lib/index.js`). */
export interface NativeSecp256k1 {
  ecdsaRecover(signature: Uint8Array, recid: number, message: Uint8Array, compressed: boolean): Uint8Array;
  /** RFC 6979 deterministic nonce, low-s: the same signature viem produces for the same key and hash. */
  ecdsaSign(message: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
}

function isNativeSecp256k1(value: unknown): value is NativeSecp256k1 {
  return (
    typeof value === 'object' &&
    value !== null &&
    'ecdsaRecover' in value &&
    typeof value.ecdsaRecover === 'function' &&
    'ecdsaSign' in value &&
    typeof value.ecdsaSign === 'function'
  );
}

/** What the curve operations run on in this process. */
export type Secp256k1Backend = { readonly kind: 'native' } | { readonly kind: 'viem'; readonly reason: string };

export function secp256k1Backend(): Secp256k1Backend {
  return nativeSecp256k1() !== undefined ? { kind: 'native' } : { kind: 'viem', reason: nativeLoadError ?? 'not loaded' };
}

/**
 * Loaded on first use. `secp256k1/bindings` is the native half only: the package's main entry
 * falls back silently to `elliptic` (pure JavaScript, slower than viem) when the binary is
 * missing, and we would rather fall back to viem, which the rest of the code already trusts.
 */
let native: NativeSecp256k1 | undefined | null = null;
let nativeLoadError: string | undefined;

export function nativeSecp256k1(): NativeSecp256k1 | undefined {
  if (native !== null) return native;
  try {
    const loaded: unknown = createRequire(import.meta.url)('secp256k1/bindings');
    if (!isNativeSecp256k1(loaded)) throw new Error('secp256k1/bindings lacks ecdsaRecover or ecdsaSign');
    native = loaded;
  } catch (err) {
    native = undefined;
    nativeLoadError = err instanceof Error ? err.message : String(err);
    // No logger reaches this module; a process warning is printed once, and
    // `secp256k1Backend()` lets the composition root report it too.
    process.emitWarning(`native secp256k1 unavailable, using viem's slower curve code: ${nativeLoadError}`, {
      code: 'X402_GATEWAY_SECP256K1_FALLBACK',
    });
  }
  return native;
}
