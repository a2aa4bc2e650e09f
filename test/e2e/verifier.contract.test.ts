/**
 * The `Verifier` contract suite (test/contracts/verifier.contract.ts) on one anvil chain: the
 * gateway's own LocalExactEvmVerifier, and FacilitatorVerifier in front of the official
 * facilitator (@x402/core + @x402/evm over HTTP, Multicall3 planted so refusals are explained).
 * Both see the very same payloads.
 */
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_SETTLE_MAX_GAS } from '../../src/config/schema.js';
import type { AssetConfig, NetworkConfig } from '../../src/config/types.js';
import { createChainClient } from '../../src/payments/chain/client.js';
import { LocalExactEvmSettler } from '../../src/payments/exact-evm/settle.js';
import { LocalExactEvmVerifier } from '../../src/payments/exact-evm/verify.js';
import { FacilitatorClient } from '../../src/payments/facilitator/client.js';
import { FacilitatorVerifier } from '../../src/payments/facilitator/verifier.js';
import { systemClock } from '../../src/payments/ports.js';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import { PAYEE, PAYER_KEY, SETTLER_KEY, startChainWorld, UNFUNDED_KEY, type ChainWorld } from '../helpers/chain-world.js';
import { startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { BASE, makeOption, USDC_BASE } from '../helpers/options.js';
import { ContractPayments, VERIFIER_CONTRACT_CASES, verifierContract } from '../contracts/verifier.contract.js';

const FACILITATOR_KEY = ANVIL_DEV_KEYS[3];
const STRANGER_KEY = ANVIL_DEV_KEYS[4];

let world: ChainWorld;
let facilitator: TestFacilitator;
let facilitatorClient: FacilitatorClient;
let local: LocalExactEvmVerifier;
let remote: FacilitatorVerifier;
let payments: ContractPayments;

beforeAll(async () => {
  world = await startChainWorld();
  const network: NetworkConfig = { ...BASE, rpc: [world.chain.rpcUrl] };
  const asset: AssetConfig = { ...USDC_BASE, network };
  const option = makeOption({ asset, payTo: PAYEE });
  const client = createChainClient(network);
  const settler = new LocalExactEvmSettler({ network, client, privateKey: SETTLER_KEY, clock: systemClock, receiptTimeoutMs: 10_000, maxGas: BigInt(DEFAULT_SETTLE_MAX_GAS) });
  local = new LocalExactEvmVerifier({ client, clock: systemClock });
  facilitator = await startTestFacilitator({ rpcUrl: world.chain.rpcUrl, chainId: world.chain.chainId, privateKey: FACILITATOR_KEY });
  facilitatorClient = new FacilitatorClient({ url: facilitator.url, headers: {}, timeoutMs: 15_000 });
  remote = new FacilitatorVerifier([facilitatorClient]);
  payments = new ContractPayments({
    option,
    payer: privateKeyToAccount(PAYER_KEY),
    unfunded: privateKeyToAccount(UNFUNDED_KEY),
    stranger: privateKeyToAccount(STRANGER_KEY),
    spend: async (payment, opt) => {
      const result = await settler.settle(payment, opt);
      if (!result.success) throw new Error(`could not spend the authorization: ${JSON.stringify(result)}`);
    },
  });
});

afterAll(async () => {
  await facilitatorClient?.close();
  await facilitator?.close();
  await world?.stop();
});

verifierContract('LocalExactEvmVerifier', () => local, () => payments);
verifierContract('FacilitatorVerifier (official facilitator)', () => remote, () => payments);

it('every payload of the facilitator suite was judged by the facilitator, none short-circuited by the adapter', () => {
  expect(facilitator.requests.filter((r) => r.method === 'POST' && r.path === '/verify')).toHaveLength(VERIFIER_CONTRACT_CASES.length);
});
