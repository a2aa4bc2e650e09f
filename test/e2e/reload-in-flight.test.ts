/**
 * A reload while a paid request is in flight: the request finishes on the config it started
 * with (and is charged its price), the next request gets the new price. Money checked on chain.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, localSettlementBase, PAYEE, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGatewayFromFile } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway | undefined;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

it('lets a paid request in flight finish on its config while new requests get the new price', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'x402-reload-paid-')), 'gateway.yaml');
  const yaml = (price: string) => `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl) })}
upstreams:
  api: { url: "${upstream.url}" }
reload: { watch: false }
routes:
  - { match: "GET /slow", price: "${price}" }
`;
  writeFileSync(path, yaml('$0.01'));
  gw = await startGatewayFromFile(path);

  const http = v2HttpClient();
  const header = http.encodePaymentSignatureHeader(await http.createPaymentPayload(await challengeOf(http, `${gw.url}/slow`)));
  const before = await world.balances();
  // The upstream answers after 2 s; the reload lands in between.
  const inFlight = send(gw.url, 'GET', '/slow', { headers: header });
  await new Promise((r) => setTimeout(r, 300));
  writeFileSync(path, yaml('$0.03'));
  expect(await gw.reload()).toMatchObject({ result: 'applied' });
  const next = await send(gw.url, 'GET', '/slow');
  expect(next.status).toBe(402);
  expect(next.headers['x-payment-amount']).toBe('0.03');

  const res = await inFlight;
  expect(res.status).toBe(200);
  expect(decodeHeader(res.headers['payment-response'])).toMatchObject({ success: true });
  const after = await world.balances();
  expect(after.payee - before.payee).toBe(10_000n);
});
