/**
 * The local exact-EVM verifier's checks, order and reason strings, against a fake chain reader
 * (the port), so every branch runs without a chain. The e2e test runs the same checks on anvil.
 */
import { serializeErc6492Signature, toHex, type PrivateKeyAccount } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Address, NetworkConfig, PaymentOption } from '../../src/config/types.js';
import { InfrastructureError } from '../../src/errors.js';
import type { ExactEvmChainReader } from '../../src/payments/exact-evm/chain-reader.js';
import { transferWithAuthorizationDigest, transferWithAuthorizationTypedData } from '../../src/payments/exact-evm/typed-data.js';
import { BALANCE_TTL_MS, CODE_TTL_MS, LocalExactEvmVerifier, NO_CODE_TTL_MS } from '../../src/payments/exact-evm/verify.js';
import type { Clock } from '../../src/payments/ports.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import { withWire } from '../../src/protocol/option-wire.js';
import type { DecodedPayment, Eip3009Authorization, Hex } from '../../src/protocol/types.js';
import { fixedClock, realClock } from '../helpers/clock.js';
import { BASE, officialPayment, PAY_TO, USDC_BASE } from '../helpers/options.js';

const NETWORK = BASE;
const ASSET = USDC_BASE;
const OTHER: Address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const OPTION: PaymentOption = withWire({ scheme: 'exact', asset: ASSET, amount: 10_000n, payTo: PAY_TO, maxTimeoutSeconds: 300 });
const PAYER = privateKeyToAccount(`0x${'11'.repeat(32)}`);
const NOW = 1_750_000_000n;


/** The chain, as the verifier's port sees it. Records every read. */
class FakeChain implements ExactEvmChainReader {
  readonly chainId = 8453;
  readonly calls: string[] = [];
  readonly withCode = new Set<string>();
  readonly used = new Set<string>();
  balance = 1_000_000n;
  eip3009 = true;
  fault: Error | undefined;
  erc1271: (wallet: Address, digest: Hex, signature: Hex) => boolean = () => false;

  #read(name: string): void {
    this.calls.push(name);
    if (this.fault !== undefined) throw this.fault;
  }
  async hasCode(address: Address): Promise<boolean> {
    this.#read('hasCode');
    return this.withCode.has(address.toLowerCase());
  }
  async isValidErc1271Signature(wallet: Address, digest: Hex, signature: Hex): Promise<boolean> {
    this.#read('isValidSignature');
    return this.erc1271(wallet, digest, signature);
  }
  async authorizationState(_asset: Address, authorizer: Address, nonce: Hex): Promise<boolean | undefined> {
    this.#read('authorizationState');
    return this.eip3009 ? this.used.has(`${authorizer.toLowerCase()}:${nonce}`) : undefined;
  }
  async balanceOf(): Promise<bigint | undefined> {
    this.#read('balanceOf');
    return this.balance;
  }
  async nonceStateAndBalance(asset: Address, authorizer: Address, nonce: Hex): Promise<{ used: boolean | undefined; balance: bigint | undefined }> {
    const [used, balance] = await Promise.all([this.authorizationState(asset, authorizer, nonce), this.balanceOf()]);
    return { used, balance };
  }
}

let nonceCounter = 0;
const freshNonce = (): Hex => toHex(++nonceCounter, { size: 32 });

function authorization(overrides: Partial<Eip3009Authorization> = {}): Eip3009Authorization {
  return {
    from: PAYER.address,
    to: PAY_TO,
    value: 10_000n,
    validAfter: NOW - 600n,
    validBefore: NOW + 300n,
    nonce: freshNonce(),
    ...overrides,
  };
}

/** Encodes a payment as a client would and decodes it with the gateway's strict decoder. */
function decode(version: 1 | 2, auth: Eip3009Authorization, signature: Hex, network?: string): DecodedPayment {
  const payload = {
    signature,
    authorization: {
      from: auth.from,
      to: auth.to,
      value: auth.value.toString(),
      validAfter: auth.validAfter.toString(),
      validBefore: auth.validBefore.toString(),
      nonce: auth.nonce,
    },
  };
  const body =
    version === 2
      ? {
          x402Version: 2,
          accepted: {
            scheme: 'exact',
            network: network ?? 'eip155:8453',
            amount: '10000',
            asset: ASSET.address,
            payTo: PAY_TO,
            maxTimeoutSeconds: 300,
            extra: { name: 'USD Coin', version: '2' },
          },
          payload,
        }
      : { x402Version: 1, scheme: 'exact', network: network ?? 'base', payload };
  const decoded = decodePaymentHeader({ paymentSignature: Buffer.from(JSON.stringify(body)).toString('base64') });
  if (decoded.kind !== 'ok') throw new Error(`test payment did not decode: ${JSON.stringify(decoded)}`);
  return decoded.payment;
}

async function signed(
  overrides: Partial<Eip3009Authorization> = {},
  opts: { version?: 1 | 2; signer?: PrivateKeyAccount; network?: string } = {},
): Promise<DecodedPayment> {
  const signer = opts.signer ?? PAYER;
  const auth = authorization({ from: signer.address, ...overrides });
  const signature = await signer.signTypedData(transferWithAuthorizationTypedData(ASSET, auth));
  return decode(opts.version ?? 2, auth, signature, opts.network);
}

/** Flips one bit in the signature's `r`. */
const tamper = (payment: DecodedPayment): DecodedPayment => {
  const sig = payment.payload.signature;
  const flipped = (Number.parseInt(sig.slice(10, 12), 16) ^ 1).toString(16).padStart(2, '0');
  return { ...payment, payload: { ...payment.payload, signature: `0x${sig.slice(2, 10)}${flipped}${sig.slice(12)}` } };
};

let chain: FakeChain;
let verifier: LocalExactEvmVerifier;
beforeEach(() => {
  chain = new FakeChain();
  verifier = new LocalExactEvmVerifier({ reader: chain, clock: fixedClock(NOW) });
});

describe('LocalExactEvmVerifier: a good payment', () => {
  it('accepts a payload signed by the official @x402/evm client, with three chain reads', async () => {
    const payment = await officialPayment(PAYER);
    // The official client stamps real time; verify on the real clock.
    const real = new LocalExactEvmVerifier({ reader: chain, clock: realClock() });
    expect(await real.verify(payment, OPTION)).toEqual({ valid: true, payer: PAYER.address });
    expect(chain.calls.sort()).toEqual(['authorizationState', 'balanceOf', 'hasCode']);
  });

  it('accepts a v1 payload on the v1 network name', async () => {
    expect(await verifier.verify(await signed({}, { version: 1 }), OPTION)).toEqual({ valid: true, payer: PAYER.address });
  });

  it('accepts a balance exactly equal to the value', async () => {
    chain.balance = 10_000n;
    expect((await verifier.verify(await signed(), OPTION)).valid).toBe(true);
  });
});

describe('LocalExactEvmVerifier: refusals and their reasons', () => {
  const reasonOf = async (payment: DecodedPayment, option: PaymentOption = OPTION, clock?: Clock): Promise<string> => {
    const v = clock === undefined ? verifier : new LocalExactEvmVerifier({ reader: chain, clock });
    const result = await v.verify(payment, option);
    if (result.valid) throw new Error('expected a refusal');
    expect(result.payer).toBe(payment.payload.authorization.from);
    return result.reason;
  };

  it('scheme: an echoed requirement of another scheme', async () => {
    const payment = await signed();
    const accepted = payment.accepted;
    if (accepted === undefined) throw new Error('v2 payment without accepted');
    expect(await reasonOf({ ...payment, accepted: { ...accepted, scheme: 'upto' } })).toBe('invalid_exact_evm_scheme');
  });

  it('network: a payload for another chain, in either version', async () => {
    expect(await reasonOf(await signed({}, { network: 'eip155:84532' }))).toBe('invalid_exact_evm_network_mismatch');
    expect(await reasonOf(await signed({}, { version: 1, network: 'base-sepolia' }))).toBe('invalid_exact_evm_network_mismatch');
    // v2 names the network by CAIP-2 only, v1 by legacy name only.
    expect(await reasonOf(await signed({}, { network: 'base' }))).toBe('invalid_exact_evm_network_mismatch');
    expect(await reasonOf(await signed({}, { version: 1, network: 'eip155:8453' }))).toBe('invalid_exact_evm_network_mismatch');
    expect(chain.calls).toEqual([]);
  });

  it('signature: a tampered signature, checking only whether the payer has code', async () => {
    expect(await reasonOf(tamper(await signed()))).toBe('invalid_exact_evm_signature');
    expect(chain.calls).toEqual(['hasCode']);
  });

  it('signature: signed by someone other than `from`', async () => {
    const other = privateKeyToAccount(`0x${'22'.repeat(32)}`);
    const auth = authorization();
    const signature = await other.signTypedData(transferWithAuthorizationTypedData(ASSET, auth));
    expect(await reasonOf(decode(2, auth, signature))).toBe('invalid_exact_evm_signature');
  });

  it('signature: signed under another EIP-712 domain (token name)', async () => {
    const auth = authorization();
    const signature = await PAYER.signTypedData(transferWithAuthorizationTypedData({ ...ASSET, eip712Name: 'USDC' }, auth));
    expect(await reasonOf(decode(2, auth, signature))).toBe('invalid_exact_evm_signature');
  });

  it('signature: the high-s twin of a valid signature (refused on chain by USDC)', async () => {
    const payment = await signed();
    const sig = payment.payload.signature;
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const highS = (n - BigInt(`0x${sig.slice(66, 130)}`)).toString(16).padStart(64, '0');
    const v = Number.parseInt(sig.slice(130), 16) === 27 ? '1c' : '1b';
    const twin: Hex = `0x${sig.slice(2, 66)}${highS}${v}`;
    expect(await reasonOf({ ...payment, payload: { ...payment.payload, signature: twin } })).toBe('invalid_exact_evm_signature');
  });

  it('recipient: `to` is not the option payTo, with no chain read at all', async () => {
    expect(await reasonOf(await signed(), { ...OPTION, payTo: OTHER })).toBe('invalid_exact_evm_recipient_mismatch');
    expect(chain.calls).toEqual([]);
  });

  it('validBefore: needs 6 s of grace', async () => {
    const payment = await signed({ validBefore: NOW + 5n });
    expect(await reasonOf(payment)).toBe('invalid_exact_evm_payload_authorization_valid_before');
    expect((await verifier.verify(await signed({ validBefore: NOW + 6n }), OPTION)).valid).toBe(true);
  });

  it('validAfter: must not be in the future', async () => {
    expect(await reasonOf(await signed({ validAfter: NOW + 1n }))).toBe('invalid_exact_evm_payload_authorization_valid_after');
    expect((await verifier.verify(await signed({ validAfter: NOW }), OPTION)).valid).toBe(true);
  });

  it('value: must equal the amount exactly, with the v2 and v1 reason names', async () => {
    expect(await reasonOf(await signed({ value: 10_001n }))).toBe('invalid_exact_evm_payload_authorization_value_mismatch');
    expect(await reasonOf(await signed({ value: 9_999n }))).toBe('invalid_exact_evm_payload_authorization_value_mismatch');
    expect(await reasonOf(await signed({ value: 10_001n }, { version: 1 }))).toBe('invalid_exact_evm_authorization_value');
    expect(chain.calls).toEqual([]);
  });

  it('nonce: already used on chain', async () => {
    const payment = await signed();
    chain.used.add(`${PAYER.address.toLowerCase()}:${payment.payload.authorization.nonce}`);
    expect(await reasonOf(payment)).toBe('invalid_exact_evm_nonce_already_used');
  });

  it('balance: below the value', async () => {
    chain.balance = 9_999n;
    expect(await reasonOf(await signed())).toBe('invalid_exact_evm_insufficient_balance');
  });

  it('token: no authorizationState means no EIP-3009', async () => {
    chain.eip3009 = false;
    expect(await reasonOf(await signed())).toBe('invalid_exact_evm_eip3009_not_supported');
  });

  it('reports the first failing check in the reference order', async () => {
    // signature before recipient
    expect(await reasonOf(tamper(await signed()), { ...OPTION, payTo: OTHER })).toBe('invalid_exact_evm_signature');
    // recipient before time
    expect(await reasonOf(await signed({ validBefore: NOW }), { ...OPTION, payTo: OTHER })).toBe('invalid_exact_evm_recipient_mismatch');
    // validBefore before validAfter before value
    expect(await reasonOf(await signed({ validBefore: NOW, validAfter: NOW + 1n, value: 1n }))).toBe(
      'invalid_exact_evm_payload_authorization_valid_before',
    );
    expect(await reasonOf(await signed({ validAfter: NOW + 1n, value: 1n }))).toBe('invalid_exact_evm_payload_authorization_valid_after');
    // nonce before balance
    const payment = await signed();
    chain.used.add(`${PAYER.address.toLowerCase()}:${payment.payload.authorization.nonce}`);
    chain.balance = 0n;
    expect(await reasonOf(payment)).toBe('invalid_exact_evm_nonce_already_used');
  });
});

describe('LocalExactEvmVerifier: contract wallets', () => {
  const WALLET: Address = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
  const walletSig: Hex = `0x${'ab'.repeat(100)}`;

  it('ERC-1271: asks the wallet with the EIP-712 digest and the signature', async () => {
    chain.withCode.add(WALLET.toLowerCase());
    const auth = authorization({ from: WALLET });
    const digest = transferWithAuthorizationDigest(ASSET, auth);
    chain.erc1271 = (wallet, d, s) => wallet === WALLET && d === digest && s === walletSig;
    expect(await verifier.verify(decode(2, auth, walletSig), OPTION)).toEqual({ valid: true, payer: WALLET });
    chain.erc1271 = () => false;
    expect(await verifier.verify(decode(2, authorization({ from: WALLET }), walletSig), OPTION)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_signature',
    });
  });

  it('a long signature from an account without code is refused', async () => {
    expect(await verifier.verify(decode(2, authorization({ from: WALLET }), walletSig), OPTION)).toMatchObject({
      valid: false,
      reason: 'invalid_exact_evm_signature',
    });
    expect(chain.calls).toEqual(['hasCode']);
  });

  it('ERC-6492: a counterfactual wallet is refused (no factory allowed), a deployed one checks the inner signature once "no code" is no longer believed', async () => {
    const clock = fixedClock(NOW);
    const v = new LocalExactEvmVerifier({ reader: chain, clock });
    const wrapped = serializeErc6492Signature({ address: OTHER, data: '0xdeadbeef', signature: walletSig });
    expect(await v.verify(decode(2, authorization({ from: WALLET }), wrapped), OPTION)).toMatchObject({
      valid: false,
      reason: 'eip6492_factory_not_allowed',
    });
    chain.withCode.add(WALLET.toLowerCase());
    chain.erc1271 = (_w, _d, s) => s === walletSig;
    expect(await v.verify(decode(2, authorization({ from: WALLET }), wrapped), OPTION)).toMatchObject({ reason: 'eip6492_factory_not_allowed' });
    clock.advanceMs(NO_CODE_TTL_MS);
    expect((await v.verify(decode(2, authorization({ from: WALLET }), wrapped), OPTION)).valid).toBe(true);
  });

  it('ERC-6492 wrapper that does not decode: an invalid signature, with no chain read, even from a wallet that accepts anything (it used to throw)', async () => {
    chain.withCode.add(WALLET.toLowerCase());
    chain.erc1271 = () => true;
    const garbage: Hex = `0x${'ab'.repeat(200)}${'6492'.repeat(16)}`;
    for (const version of [1, 2] as const) {
      expect(await verifier.verify(decode(version, authorization({ from: WALLET }), garbage), OPTION)).toEqual({
        valid: false,
        reason: 'invalid_exact_evm_signature',
        payer: WALLET,
      });
    }
    expect(chain.calls).toEqual([]);
  });

  it('EIP-7702: an ECDSA signer whose account has code is checked by ERC-1271 instead', async () => {
    chain.withCode.add(PAYER.address.toLowerCase());
    chain.erc1271 = () => false;
    expect(await verifier.verify(await signed(), OPTION)).toMatchObject({ valid: false, reason: 'invalid_exact_evm_signature' });
    chain.erc1271 = () => true;
    expect((await verifier.verify(await signed(), OPTION)).valid).toBe(true);
  });
});

describe('LocalExactEvmVerifier: the settlement gas check (settle.maxGas), for payers with code only', () => {
  const WALLET: Address = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
  const walletSig: Hex = `0x${'ab'.repeat(100)}`;
  const OVER = { reason: 'settlement_gas_over_limit', message: 'the settlement would need 5075604 gas, over settle.maxGas (150000)' };

  /** A verifier whose gas check answers `answer`, recording each call in the chain's log. */
  function withGasCheck(answer: typeof OVER | undefined): LocalExactEvmVerifier {
    return new LocalExactEvmVerifier({
      reader: chain,
      clock: fixedClock(NOW),
      settlementGas: async () => {
        chain.calls.push('settlementGas');
        return answer;
      },
    });
  }

  it('refuses a contract wallet whose settlement would exceed the cap, after every other check passed', async () => {
    chain.withCode.add(WALLET.toLowerCase());
    chain.erc1271 = () => true;
    expect(await withGasCheck(OVER).verify(decode(2, authorization({ from: WALLET }), walletSig), OPTION)).toEqual({ valid: false, ...OVER, payer: WALLET });
    expect(chain.calls.at(-1)).toBe('settlementGas');
    expect(await withGasCheck(undefined).verify(decode(2, authorization({ from: WALLET }), walletSig), OPTION)).toEqual({ valid: true, payer: WALLET });
  });

  it('is not asked when the payment fails an earlier check', async () => {
    chain.withCode.add(WALLET.toLowerCase());
    chain.erc1271 = () => true;
    chain.balance = 0n;
    expect(await withGasCheck(OVER).verify(decode(2, authorization({ from: WALLET }), walletSig), OPTION)).toMatchObject({
      reason: 'invalid_exact_evm_insufficient_balance',
    });
    expect(chain.calls).not.toContain('settlementGas');
  });

  it('asks for an EIP-7702 account (an ECDSA signer with code)', async () => {
    chain.withCode.add(PAYER.address.toLowerCase());
    chain.erc1271 = () => true;
    expect(await withGasCheck(OVER).verify(await signed(), OPTION)).toMatchObject({ valid: false, reason: 'settlement_gas_over_limit' });
  });

  it('costs an EOA payer nothing: no estimate, no extra chain read', async () => {
    expect(await withGasCheck(OVER).verify(await signed(), OPTION)).toEqual({ valid: true, payer: PAYER.address });
    expect(chain.calls.sort()).toEqual(['authorizationState', 'balanceOf', 'hasCode']);
  });
});

describe('LocalExactEvmVerifier: faults and caching', () => {
  it('an unreachable chain throws InfrastructureError, never a result', async () => {
    chain.fault = new InfrastructureError('GW_ERR_CHAIN_UNAVAILABLE', 'rpc down');
    await expect(verifier.verify(await signed(), OPTION)).rejects.toMatchObject({ code: 'GW_ERR_CHAIN_UNAVAILABLE' });
  });

  it('a payment for another chain is a wiring bug and throws', async () => {
    const arbitrum: NetworkConfig = { ...NETWORK, name: 'arbitrum', caip2: 'eip155:42161', chainId: 42161, v1Name: undefined };
    await expect(verifier.verify(await signed(), { ...OPTION, asset: { ...ASSET, network: arbitrum } })).rejects.toThrow(/chain 8453/);
  });

  it('recovers the signer of a payload once, then answers from the signer cache', async () => {
    const payment = await signed();
    await verifier.verify(payment, OPTION);
    await verifier.verify(payment, OPTION);
    expect(verifier.counters).toEqual({ signerCacheHits: 1, signerCacheMisses: 1 });
    // The chain is read every time: nonce state and balance can change.
    expect(chain.calls.filter((c) => c === 'authorizationState')).toHaveLength(2);
  });

  it('does not share a cached signer between payloads that differ in any field', async () => {
    const payment = await signed();
    await verifier.verify(payment, OPTION);
    const altered: DecodedPayment = {
      ...payment,
      payload: { ...payment.payload, authorization: { ...payment.payload.authorization, value: 10_001n } },
    };
    expect(await verifier.verify(altered, { ...OPTION, amount: 10_001n })).toMatchObject({ reason: 'invalid_exact_evm_signature' });
  });
});

describe('LocalExactEvmVerifier: payer facts an attacker cannot use against us', () => {
  it('reads whether a payer has code once per CODE_TTL_MS (code) or NO_CODE_TTL_MS (none), not per payment', async () => {
    const clock = fixedClock(NOW);
    const v = new LocalExactEvmVerifier({ reader: chain, clock });
    for (let i = 0; i < 3; i++) expect((await v.verify(await signed(), OPTION)).valid).toBe(true);
    expect(chain.calls.filter((c) => c === 'hasCode')).toHaveLength(1);
    clock.advanceMs(NO_CODE_TTL_MS);
    await v.verify(await signed(), OPTION);
    expect(chain.calls.filter((c) => c === 'hasCode')).toHaveLength(2);
    // An account with code is believed for longer.
    chain.withCode.add(PAYER.address.toLowerCase());
    chain.erc1271 = () => true;
    clock.advanceMs(NO_CODE_TTL_MS);
    await v.verify(await signed(), OPTION);
    clock.advanceMs(CODE_TTL_MS - 1);
    await v.verify(await signed(), OPTION);
    expect(chain.calls.filter((c) => c === 'hasCode')).toHaveLength(3);
  });

  it('an empty wallet signing fresh authorizations costs one balance read per BALANCE_TTL_MS; a top-up is seen after it', async () => {
    const clock = fixedClock(NOW);
    const v = new LocalExactEvmVerifier({ reader: chain, clock });
    chain.balance = 9_999n;
    for (let i = 0; i < 5; i++) expect(await v.verify(await signed(), OPTION)).toMatchObject({ valid: false, reason: 'invalid_exact_evm_insufficient_balance' });
    expect(chain.calls.filter((c) => c === 'balanceOf')).toHaveLength(1);
    expect(chain.calls.filter((c) => c === 'authorizationState')).toHaveLength(1);
    // A cheaper payment the known balance covers is not refused on its strength: it reads again.
    expect((await v.verify(await signed({ value: 5_000n }), { ...OPTION, amount: 5_000n })).valid).toBe(true);
    chain.balance = 1_000_000n;
    expect(await v.verify(await signed(), OPTION)).toMatchObject({ reason: 'invalid_exact_evm_insufficient_balance' });
    clock.advanceMs(BALANCE_TTL_MS);
    expect((await v.verify(await signed(), OPTION)).valid).toBe(true);
  });

  it('never keeps a "valid": every good payment reads the nonce state again', async () => {
    for (let i = 0; i < 3; i++) await verifier.verify(await signed(), OPTION);
    expect(chain.calls.filter((c) => c === 'authorizationState')).toHaveLength(3);
  });
});
