/**
 * A contract payer must not set the settler's gas. Hostile ERC-1271 wallets (test/fixtures/) pay
 * through the running gateway on anvil; what the settler spent is read on chain (receipts, its
 * ETH balance and transaction count), what moved by USDC balances, and what was forwarded by the
 * upstream's own record.
 *
 * Found by a red-team review: a wallet whose `isValidSignature` burns 5M gas got a $0.01 request
 * settled for 5.07M gas, and a "chameleon" (valid when simulated at gas price 0, burning its gas
 * and saying no in a mined transaction) had the same header settled, reverted and forwarded
 * three times.
 */
import { privateKeyToAccount } from 'viem/accounts';
import type { Address, Hash } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANVIL_DEV_KEYS, createDevChainClient, type DevChainClient } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC, mintTestUsdc } from '../../src/tools/devchain/token.js';
import { createChainClient } from '../../src/payments/chain/client.js';
import { LocalExactEvmSettler } from '../../src/payments/exact-evm/settle.js';
import { systemClock, type Receipt } from '../../src/payments/ports.js';
import { decodePaymentHeader } from '../../src/protocol/decode-payment.js';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, PAYEE, SETTLER_KEY, startChainWorld, v2Fetch, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, parseTestConfig, startGateway } from '../helpers/gateway.js';
import { deployWallet, walletPaymentHeader } from '../helpers/hostile-wallets.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/** `settle.maxGas`'s default (the configs below leave it unset). */
const MAX_GAS = 150_000n;
const CENT = 10_000n;
const SETTLER = privateKeyToAccount(SETTLER_KEY).address;
/** Settles for the second gateway, so the two never share a transaction nonce. */
const SECOND_SETTLER_KEY = ANVIL_DEV_KEYS[4];
const OWNER = privateKeyToAccount(ANVIL_DEV_KEYS[7]);

let world: ChainWorld;
/** Deploys and mints from a key of its own, so the settlers' counts and balances are theirs alone. */
let deployer: DevChainClient;
let upstream: TestUpstream;
let gw: RunningGateway;
let wallets: Readonly<Record<'honest' | 'burner5m' | 'overCap' | 'heavyChameleon' | 'chameleon' | 'chameleon2', Address>>;

function yaml(network: string): string {
  return `${gatewayYamlHead({ payTo: PAYEE, network })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /after", price: "$0.01" }
  - { match: "GET /before", price: "$0.01", settlement: before }
`;
}

const network = (rpcUrl: string, key: string, settleExtra = '') =>
  `base: { network: "eip155:8453", rpc: "${rpcUrl}", settle: { mode: local, privateKey: "${key}"${settleExtra} } }`;

beforeAll(async () => {
  world = await startChainWorld();
  deployer = createDevChainClient(world.chain, ANVIL_DEV_KEYS[3]);
  const deploy = async (fixture: 'GasBurnerWallet' | 'ChameleonWallet', gas: bigint): Promise<Address> => {
    const wallet = await deployWallet(deployer, fixture, OWNER.address, gas);
    await mintTestUsdc(deployer, { token: BASE_USDC, to: wallet, amount: 1_000_000n });
    return wallet;
  };
  wallets = {
    honest: await deploy('GasBurnerWallet', 0n),
    burner5m: await deploy('GasBurnerWallet', 5_000_000n),
    // Its signature check alone fits the cap; the whole settlement does not.
    overCap: await deploy('GasBurnerWallet', 100_000n),
    heavyChameleon: await deploy('ChameleonWallet', 3_000_000n),
    // Its simulated settlement (~136k gas) fits the cap, but the estimate plus headroom does not:
    // the cap, not the estimate, is then the transaction's gas limit.
    chameleon: await deploy('ChameleonWallet', 60_000n),
    chameleon2: await deploy('ChameleonWallet', 0n),
  };
  upstream = await startUpstream();
  gw = await startGateway(yaml(network(world.chain.rpcUrl, SETTLER_KEY)));
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

/** What the settler key has done on chain: transactions sent (its nonce) and ETH held. */
async function settlerState(address: Address = SETTLER): Promise<{ transactions: number; wei: bigint }> {
  const [transactions, wei] = await Promise.all([
    world.admin.getTransactionCount({ address, blockTag: 'latest' }),
    world.admin.getBalance({ address }),
  ]);
  return { transactions, wei };
}

/** A settlement transaction as the chain has it. */
async function onChain(hash: Hash): Promise<{ status: string; gasUsed: bigint; gasLimit: bigint; cost: bigint; gasPrice: bigint }> {
  const [receipt, tx] = await Promise.all([world.admin.getTransactionReceipt({ hash }), world.admin.getTransaction({ hash })]);
  return {
    status: receipt.status,
    gasUsed: receipt.gasUsed,
    gasLimit: tx.gas,
    cost: receipt.gasUsed * receipt.effectiveGasPrice,
    gasPrice: receipt.effectiveGasPrice,
  };
}

async function rowsSince(time: number, ledger = gw.ledger): Promise<Receipt[]> {
  return (await ledger.receipts({ since: time })).reverse();
}

/** Settlement transactions named by the ledger rows since `time`. */
async function transactionsSince(time: number, ledger = gw.ledger): Promise<Hash[]> {
  const hashes = (await rowsSince(time, ledger)).map((r) => r.transaction).filter((t): t is Hash => /^0x[0-9a-f]{64}$/i.test(t));
  return [...new Set(hashes)];
}

const reasonOf = (res: { json(): unknown }): string | undefined => (res.json() as { error?: string }).error;

async function walletHeader(wallet: Address, path = '/after', base = gw.url): Promise<Record<string, string>> {
  return walletPaymentHeader(await challengeOf(v2HttpClient(), `${base}${path}`), wallet, OWNER);
}

describe('settlement gas has a cap (settle.maxGas) that no payer can raise', () => {
  it('for scale: an EOA payer and an honest contract wallet settle well under the cap', async () => {
    const t0 = Date.now();
    const eoa = await v2Fetch()(`${gw.url}/after`);
    expect(eoa.status).toBe(200);
    const honest = await send(gw.url, 'GET', '/after', { headers: await walletHeader(wallets.honest) });
    expect(honest.status).toBe(200);
    const txs = await transactionsSince(t0);
    expect(txs).toHaveLength(2);
    for (const hash of txs) {
      const tx = await onChain(hash);
      expect(tx.status).toBe('success');
      expect(tx.gasUsed).toBeLessThan(MAX_GAS);
      expect(tx.gasLimit).toBeLessThanOrEqual(MAX_GAS);
    }
    expect(await world.balance(wallets.honest)).toBe(1_000_000n - CENT);
  });

  it('a wallet whose isValidSignature burns 5M gas is refused at verification: not forwarded, no transaction, nothing moved', async () => {
    const header = await walletHeader(wallets.burner5m);
    const seen = upstream.seen.length;
    const settler = await settlerState();
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/after', { headers: header });
      expect([res.status, reasonOf(res)]).toEqual([402, 'invalid_exact_evm_signature']);
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect(upstream.seen.length - seen).toBe(0);
    expect(await settlerState()).toEqual(settler);
    expect(await world.balance(wallets.burner5m)).toBe(1_000_000n);
  });

  it('a settlement that would need more than the cap is refused before anything is forwarded (settlement: after and before)', async () => {
    for (const path of ['/after', '/before']) {
      const t0 = Date.now();
      const seen = upstream.seen.length;
      const settler = await settlerState();
      const res = await send(gw.url, 'GET', path, { headers: await walletHeader(wallets.overCap, path) });
      expect([res.status, reasonOf(res)]).toEqual([402, 'settlement_gas_over_limit']);
      expect(upstream.seen.length - seen).toBe(0);
      expect(await settlerState()).toEqual(settler);
      expect((await rowsSince(t0)).map((r) => [r.status, r.reason])).toEqual([['refused', 'settlement_gas_over_limit']]);
    }
    expect(await world.balance(wallets.overCap)).toBe(1_000_000n);
  });

  it('the settler itself refuses an estimate over the cap without sending (the check that guards settlement: before)', async () => {
    const config = parseTestConfig(yaml(network(world.chain.rpcUrl, SETTLER_KEY)));
    const base = config.networks.get('base');
    const route = config.routes.find((r) => r.match === 'GET /before');
    if (base === undefined || route?.price.kind !== 'priced' || route.price.options[0] === undefined) throw new Error('test config');
    const decoded = decodePaymentHeader({ paymentSignature: (await walletHeader(wallets.overCap, '/before'))['PAYMENT-SIGNATURE'] });
    if (decoded.kind !== 'ok') throw new Error('header did not decode');
    const settler = new LocalExactEvmSettler({ network: base, client: createChainClient(base), privateKey: SETTLER_KEY, clock: systemClock });
    const before = await settlerState();
    expect(await settler.settle(decoded.payment, route.price.options[0])).toMatchObject({
      success: false,
      reason: 'settlement_gas_over_limit',
      maybeOnChain: false,
    });
    expect(await settlerState()).toEqual(before);
  });
});

describe('a chameleon wallet: valid when simulated at gas price 0, burns its gas and says no when mined', () => {
  it('one that burns 3M gas when simulated is refused at verification, however often it sends its header', async () => {
    const header = await walletHeader(wallets.heavyChameleon);
    const seen = upstream.seen.length;
    const settler = await settlerState();
    for (let i = 0; i < 3; i++) {
      const res = await send(gw.url, 'GET', '/after', { headers: header });
      expect([res.status, reasonOf(res)]).toEqual([402, 'invalid_exact_evm_signature']);
    }
    expect(upstream.seen.length - seen).toBe(0);
    expect(await settlerState()).toEqual(settler);
  });

  it('one that fits the cap when simulated costs one capped revert; then its header and the payer are refused without forwarding', async () => {
    const t0 = Date.now();
    const header = await walletHeader(wallets.chameleon);
    const seen = upstream.seen.length;
    const settler = await settlerState();
    const payeeBefore = await world.balance(PAYEE);

    // First presentation: verification and the estimate pass (the wallet behaves when simulated),
    // the upstream answers (settlement: after), the mined settlement reverts.
    const first = await send(gw.url, 'GET', '/after', { headers: header });
    expect([first.status, reasonOf(first)]).toEqual([402, 'invalid_exact_evm_transaction_failed']);
    expect(upstream.seen.length - seen).toBe(1);
    const [hash, ...more] = await transactionsSince(t0);
    expect(more).toEqual([]);
    if (hash === undefined) throw new Error('no settlement transaction');
    const tx = await onChain(hash);
    expect(tx.status).toBe('reverted');
    expect(tx.gasLimit).toBe(MAX_GAS);
    expect(tx.gasUsed).toBeLessThanOrEqual(MAX_GAS);
    const afterFirst = await settlerState();
    expect(afterFirst.transactions - settler.transactions).toBe(1);
    expect(settler.wei - afterFirst.wei).toBe(tx.cost);
    expect(settler.wei - afterFirst.wei).toBeLessThanOrEqual(MAX_GAS * tx.gasPrice);

    // The same header again, twice: the nonce stayed spent; no forwarding, no second transaction.
    for (let i = 0; i < 2; i++) {
      const again = await send(gw.url, 'GET', '/after', { headers: header });
      expect([again.status, reasonOf(again)]).toEqual([402, 'payer_suspended']);
    }
    // A fresh authorization from the same payer: refused at verification while it is suspended.
    const fresh = await send(gw.url, 'GET', '/after', { headers: await walletHeader(wallets.chameleon) });
    expect([fresh.status, reasonOf(fresh)]).toEqual([402, 'payer_suspended']);
    const fresh2 = await send(gw.url, 'GET', '/before', { headers: await walletHeader(wallets.chameleon, '/before') });
    expect([fresh2.status, reasonOf(fresh2)]).toEqual([402, 'payer_suspended']);

    expect(upstream.seen.length - seen).toBe(1);
    expect(await settlerState()).toEqual(afterFirst);
    expect(await world.balance(wallets.chameleon)).toBe(1_000_000n);
    expect(await world.balance(PAYEE)).toBe(payeeBefore);
    // The suspended payer's refusals come before its signature is checked: counted, not rows.
    expect((await rowsSince(t0)).map((r) => [r.status, r.reason])).toEqual([['settle_failed', 'invalid_exact_evm_transaction_failed']]);
    const { values } = await gw.metrics.verificationFailures.get();
    expect(values.find((v) => v.labels['reason'] === 'payer_suspended')?.value).toBe(4);
    expect(await gw.ledger.payerPenalty(8453, wallets.chameleon)).toBeGreaterThan(Date.now() / 1000 + 3500);
  });

  it('with revertPenaltySeconds: 0 the payer is not suspended, but the reverted authorization stays spent', async () => {
    const second = await startGateway(yaml(network(world.chain.rpcUrl, SECOND_SETTLER_KEY, ', revertPenaltySeconds: 0')));
    try {
      const secondSettler = privateKeyToAccount(SECOND_SETTLER_KEY).address;
      const t0 = Date.now();
      const header = await walletHeader(wallets.chameleon2, '/after', second.url);
      const seen = upstream.seen.length;
      const first = await send(second.url, 'GET', '/after', { headers: header });
      expect([first.status, reasonOf(first)]).toEqual([402, 'invalid_exact_evm_transaction_failed']);
      const afterFirst = await settlerState(secondSettler);
      const again = await send(second.url, 'GET', '/after', { headers: header });
      expect([again.status, reasonOf(again)]).toEqual([402, 'invalid_exact_evm_nonce_already_used']);
      expect(upstream.seen.length - seen).toBe(1);
      expect(await settlerState(secondSettler)).toEqual(afterFirst);
      const [hash] = await transactionsSince(t0, second.ledger);
      if (hash === undefined) throw new Error('no settlement transaction');
      expect((await onChain(hash)).gasUsed).toBeLessThanOrEqual(MAX_GAS);
      expect(await second.ledger.payerPenalty(8453, wallets.chameleon2)).toBeUndefined();
    } finally {
      await second.close();
    }
  });
});
