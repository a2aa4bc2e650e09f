/**
 * A crash after a settlement was sent loses no receipt: the gateway runs as a real process with
 * a file ledger, is killed with SIGKILL while its transaction waits to be mined, and the ledger
 * still holds the payment (payer, nonce, amount) as `pending`, while the money moves on chain.
 */
import { testActions } from 'viem';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { challengeOf, localSettlementBase, PAYEE, PAYER, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead } from '../helpers/gateway.js';
import { ledgerReceipts, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import type { Receipt } from '../../src/payments/ports.js';
import { waitFor } from '../helpers/wait.js';

let world: ChainWorld;
let upstream: TestUpstream;
let gateway: GatewayProcess | undefined;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
});

afterAll(async () => {
  gateway?.child.kill('SIGKILL');
  await upstream?.close();
  await world?.stop();
});

it('keeps the pending receipt of a settlement in flight when the process is killed', async () => {
  gateway = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl, ', receiptTimeoutMs: 60000'), port, adminPort })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`,
  );
  const { url, ledgerPath } = gateway;
  await waitFor(async () => (await send(url, 'GET', '/weather')).status === 402, 20_000, 50);

  // Stop mining: the settlement transaction is sent but cannot be confirmed.
  const test = testActions({ mode: 'anvil' })(world.admin);
  await test.setAutomine(false);
  const http = v2HttpClient();
  const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${url}/weather`)));
  const before = await world.balances();
  void send(url, 'GET', '/weather', { headers: header }).catch(() => undefined);
  let pending: Receipt | undefined;
  await waitFor(async () => {
    pending = (await ledgerReceipts(ledgerPath)).find((r) => r.status === 'pending');
    return pending !== undefined;
  }, 20_000, 50);
  await waitFor(async () => (await world.admin.getBlock({ blockTag: 'pending' })).transactions.length > 0, 20_000, 50);
  gateway.child.kill('SIGKILL');
  await gateway.exited;

  // The process is gone; its transaction is mined afterwards and the money moves.
  await test.mine({ blocks: 1 });
  await test.setAutomine(true);
  const after = await world.balances();
  expect(after.payer - before.payer).toBe(-10_000n);
  expect(after.payee - before.payee).toBe(10_000n);

  const rows = await ledgerReceipts(ledgerPath);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ status: 'pending', payer: PAYER, amount: '10000', nonce: pending?.nonce });
  expect(pending?.nonce).toMatch(/^0x[0-9a-f]{64}$/);
});
