/**
 * SIGTERM with paid requests in flight: the gateway process stops taking new work at once
 * (readiness false, listener closed), lets the requests and their settlements finish, records
 * their receipts, and exits cleanly. Money checked on chain.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { challengeOf, localSettlementBase, PAYEE, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead } from '../helpers/gateway.js';
import { ledgerReceipts, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
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

it('finishes paid requests in flight on SIGTERM, records their receipts, then exits 0', async () => {
  gateway = await startGatewayProcess(
    ({ port, adminPort }) => `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl), port, adminPort })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /slow", price: "$0.01" }
shutdown: { graceMs: 10000 }
`,
  );
  const { url, adminUrl: admin, child, exited } = gateway;
  await waitFor(async () => (await send(admin, 'GET', '/readyz')).status === 200, 20_000, 50);

  const http = v2HttpClient();
  const challenge = await challengeOf(http, `${url}/slow`);
  const headers = await Promise.all([0, 1, 2].map(async () => http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge))));
  const before = await world.balances();
  // The upstream takes 2 s to answer: all three are in flight when SIGTERM arrives.
  const inFlight = headers.map((h) => send(url, 'GET', '/slow', { headers: h }));
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGTERM');
  await waitFor(async () => (await send(admin, 'GET', '/readyz')).status === 503, 2000);
  await expect(send(url, 'GET', '/slow')).rejects.toThrow(/ECONNREFUSED|ECONNRESET|socket hang up/);

  const responses = await Promise.all(inFlight);
  for (const res of responses) {
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ slow: true });
    expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true });
  }
  expect(await exited).toBe(0);
  const after = await world.balances();
  expect(after.payee - before.payee).toBe(30_000n);
  expect(after.payer - before.payer).toBe(-30_000n);
  expect((await ledgerReceipts(gateway.ledgerPath)).map((r) => r.status)).toEqual(['settled', 'settled', 'settled']);
});
