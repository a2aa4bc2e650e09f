/**
 * A reload while a paid request is in flight: the request finishes on the config it started
 * with (and is charged its price), the next request gets the new price. Money checked on chain.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { runGateway, type RunningGateway } from '../../src/server.js';
import { challengeOf, PAYEE, SETTLER_KEY, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
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
  const yaml = (price: string) => `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: "${world.chain.rpcUrl}", settle: { mode: local, privateKey: "${SETTLER_KEY}" } }
upstreams:
  api: { url: "${upstream.url}" }
reload: { watch: false }
routes:
  - { match: "GET /slow", price: "${price}" }
`;
  writeFileSync(path, yaml('$0.01'));
  const parsed = parseConfigText(await readFile(path, 'utf8'), {});
  if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
  gw = await runGateway(parsed.config, { configPath: path, logger: pino({ level: 'silent' }), ledger: new SqliteLedger(':memory:') });

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
