/**
 * Contract-wallet payers for e2e tests (test/fixtures/*.sol): compiled with the bundled solc,
 * deployed on the test chain, and a v2 payment header that such a wallet "signs" (its owner's
 * ECDSA signature, which the wallet's ERC-1271 `isValidSignature` checks).
 */
import { readFileSync } from 'node:fs';
import { encodePaymentSignatureHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { authorizationTypes } from '@x402/evm';
import { toHex, type Address, type Hex, type PrivateKeyAccount } from 'viem';
import type { DevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, compileSolidity, type ContractArtifact } from '../../src/tools/devchain/token.js';

/** The fixtures, each a contract of the same name taking `constructor(address owner, uint256 gas)`. */
export type WalletFixture = 'GasBurnerWallet' | 'ChameleonWallet';

const compiled = new Map<WalletFixture, ContractArtifact>();

function artifact(name: WalletFixture): ContractArtifact {
  let a = compiled.get(name);
  if (a === undefined) {
    a = compileSolidity(readFileSync(new URL(`../fixtures/${name}.sol`, import.meta.url), 'utf8'), name);
    compiled.set(name, a);
  }
  return a;
}

/**
 * Deploys `name` owned by `owner`; `gas` is the GasBurnerWallet's burn per signature check, or
 * the ChameleonWallet's burn when simulated.
 */
export async function deployWallet(admin: DevChainClient, name: WalletFixture, owner: Address, gas: bigint): Promise<Address> {
  const { abi, bytecode } = artifact(name);
  const hash = await admin.deployContract({ abi, bytecode, args: [owner, gas] });
  const receipt = await admin.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success' || receipt.contractAddress == null) throw new Error(`${name} not deployed (tx ${hash})`);
  return receipt.contractAddress;
}

/**
 * A v2 PAYMENT-SIGNATURE header paying the challenge's first requirement from `wallet`: a fresh
 * random nonce, signed by `owner` over the token's EIP-712 digest, padded to 97 bytes so that only
 * the wallet (not ECDSA recovery) can accept it.
 */
export async function walletPaymentHeader(challenge: PaymentRequired, wallet: Address, owner: PrivateKeyAccount): Promise<Record<string, string>> {
  const accepted = challenge.accepts[0] as PaymentRequirements;
  const now = BigInt(Math.floor(Date.now() / 1000));
  const authorization = {
    from: wallet,
    to: accepted.payTo as Address,
    value: BigInt(accepted.amount),
    validAfter: now - 600n,
    validBefore: now + BigInt(accepted.maxTimeoutSeconds),
    nonce: toHex(crypto.getRandomValues(new Uint8Array(32))),
  };
  const ecdsa = await owner.signTypedData({
    domain: { name: 'USD Coin', version: '2', chainId: 8453, verifyingContract: BASE_USDC },
    types: authorizationTypes,
    primaryType: 'TransferWithAuthorization',
    message: authorization,
  });
  const signature: Hex = `${ecdsa}${'00'.repeat(32)}`;
  const payload = {
    x402Version: 2,
    resource: challenge.resource,
    accepted,
    payload: {
      signature,
      authorization: {
        ...authorization,
        value: String(authorization.value),
        validAfter: String(authorization.validAfter),
        validBefore: String(authorization.validBefore),
      },
    },
  };
  return { 'PAYMENT-SIGNATURE': encodePaymentSignatureHeader(payload as PaymentPayload) };
}
