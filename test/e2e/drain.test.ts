/**
 * SIGTERM with paid requests in flight: the gateway process stops taking new work at once
 * (readiness false, listener closed), lets the requests and their settlements finish, records
 * their receipts, and exits cleanly. Money checked on chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { challengeOf, PAYEE, SETTLER_KEY, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

let world: ChainWorld;
let upstream: TestUpstream;
let child: ChildProcess | undefined;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
});

afterAll(async () => {
  child?.kill('SIGKILL');
  await upstream?.close();
  await world?.stop();
});

it('finishes paid requests in flight on SIGTERM, records their receipts, then exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'x402-drain-'));
  const ledgerPath = join(dir, 'ledger.db');
  const configPath = join(dir, 'gateway.yaml');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const adminPort = port + 1;
  writeFileSync(
    configPath,
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: "${world.chain.rpcUrl}", settle: { mode: local, privateKey: "${SETTLER_KEY}" } }
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /slow", price: "$0.01" }
ledger: { path: "${ledgerPath}" }
shutdown: { graceMs: 10000 }
log: { level: warn }
`,
  );
  child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'start', '--config', configPath], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
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
  const ledger = new SqliteLedger(ledgerPath);
  const rows = await ledger.receipts({});
  await ledger.close();
  expect(rows.map((r) => r.status)).toEqual(['settled', 'settled', 'settled']);
});
