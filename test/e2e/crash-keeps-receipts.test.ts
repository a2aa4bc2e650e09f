/**
 * A crash after a settlement was sent loses no receipt: the gateway runs as a real process with
 * a file ledger, is killed with SIGKILL while its transaction waits to be mined, and the ledger
 * still holds the payment (payer, nonce, amount) as `pending`, while the money moves on chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testActions } from 'viem';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { challengeOf, PAYEE, PAYER, SETTLER_KEY, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import type { Receipt } from '../../src/payments/ports.js';
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

it('keeps the pending receipt of a settlement in flight when the process is killed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'x402-crash-'));
  const ledgerPath = join(dir, 'ledger.db');
  const configPath = join(dir, 'gateway.yaml');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  writeFileSync(
    configPath,
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: "${world.chain.rpcUrl}", settle: { mode: local, privateKey: "${SETTLER_KEY}", receiptTimeoutMs: 60000 } }
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
ledger: { path: "${ledgerPath}" }
log: { level: warn }
`,
  );
  child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'start', '--config', configPath], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
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
    const ledger = new SqliteLedger(ledgerPath);
    try {
      pending = (await ledger.receipts({})).find((r) => r.status === 'pending');
      return pending !== undefined;
    } finally {
      await ledger.close();
    }
  }, 20_000, 50);
  await waitFor(async () => (await world.admin.getBlock({ blockTag: 'pending' })).transactions.length > 0, 20_000, 50);
  child.kill('SIGKILL');
  await new Promise((r) => child?.once('exit', r));

  // The process is gone; its transaction is mined afterwards and the money moves.
  await test.mine({ blocks: 1 });
  await test.setAutomine(true);
  const after = await world.balances();
  expect(after.payer - before.payer).toBe(-10_000n);
  expect(after.payee - before.payee).toBe(10_000n);

  const ledger = new SqliteLedger(ledgerPath);
  const rows = await ledger.receipts({});
  await ledger.close();
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ status: 'pending', payer: PAYER, amount: '10000', nonce: pending?.nonce });
  expect(pending?.nonce).toMatch(/^0x[0-9a-f]{64}$/);
});
