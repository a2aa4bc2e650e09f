/**
 * The PostgreSQL store beyond the `Ledger` contract (postgres-ledger.contract.test.ts): its schema
 * version and migration under replicas starting together, the config that names it, two gateways
 * sharing one database (a nonce spent through one is refused by the other), and `receipts` reading it.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { POSTGRES_SCHEMA_VERSION } from '../../src/ledger/postgres-schema.js';
import { runGateway } from '../../src/server.js';
import { fakePayments, paymentHeaderFor } from '../helpers/fake-payments.js';
import { gatewayYamlHead, parseTestConfig, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { querySql, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';

let server: TestPostgres;
let upstream: TestUpstream;

beforeAll(async () => {
  server = await startPostgres();
  upstream = await startUpstream();
}, 60_000);
afterAll(async () => {
  await upstream?.close();
  await server?.destroy();
});


function gatewayYaml(): string {
  return `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "GET /health", price: free }
ledger: { store: postgres, url: "\${DATABASE_URL}", pool: 4 }
log: { level: silent }
reload: { watch: false }
`;
}

describe('the PostgreSQL schema', () => {
  it('replicas starting together migrate once, under the lock, to the version this gateway knows', async () => {
    const url = await server.newDatabase();
    const ledgers = await Promise.all([1, 2, 3].map(() => PostgresLedger.open(url, { pool: 2 })));
    await Promise.all(ledgers.map((l) => l.close()));
    expect(await querySql(url, 'SELECT version FROM x402_gateway_schema')).toEqual([{ version: POSTGRES_SCHEMA_VERSION }]);
    const tables = await querySql<{ table_name: string }>(url, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
    expect(tables.map((t) => t.table_name)).toEqual(['deferred_exposure', 'deferred_settlements', 'leases', 'nonces', 'payer_penalties', 'proofs', 'receipts', 'settlement_transactions', 'settlements', 'settler_nonces', 'x402_gateway_schema']);
  });

  it('refuses a database migrated by a newer gateway, saying what to do', async () => {
    const url = await server.newDatabase();
    await (await PostgresLedger.open(url, { pool: 1 })).close();
    await querySql(url, `UPDATE x402_gateway_schema SET version = ${POSTGRES_SCHEMA_VERSION + 1}`);
    await expect(PostgresLedger.open(url, { pool: 1 })).rejects.toThrow(
      `the postgres ledger has schema version ${POSTGRES_SCHEMA_VERSION + 1}, newer than this gateway knows (${POSTGRES_SCHEMA_VERSION})`,
    );
  });

  it('a server that is not there is a start-up error, not a hang', async () => {
    await expect(PostgresLedger.open('postgres://postgres:x@127.0.0.1:1/none', { pool: 1 })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('ledger: { store: postgres } in the config', () => {
  it('parses the store, its URL from the environment and its pool; refuses a URL that is not postgres', () => {
    const config = parseTestConfig(gatewayYaml(), { DATABASE_URL: 'postgres://u:p@db:5432/gw' });
    expect(config.ledger).toEqual({ store: 'postgres', url: 'postgres://u:p@db:5432/gw', pool: 4, retentionMs: 7 * 86_400_000 });
    expect(() => parseTestConfig(gatewayYaml(), { DATABASE_URL: 'mysql://db/gw' })).toThrow(/postgres:\/\//);
    const sqlite = parseTestConfig(`${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
upstreams: { api: { url: "${upstream.url}" } }
routes: [{ match: "GET /weather", price: "$0.01" }]
ledger: { store: sqlite, path: /tmp/x.db }
`);
    expect(sqlite.ledger).toEqual({ store: 'sqlite', path: '/tmp/x.db', retentionMs: 7 * 86_400_000 });
  });

  it('two gateways on one database: a payment spent through one is a replay at the other; receipts reads the shared rows', async () => {
    const url = await server.newDatabase();
    const env = { DATABASE_URL: url };
    const fake = fakePayments();
    const [a, b] = await Promise.all(
      [1, 2].map(() => runGateway(parseTestConfig(gatewayYaml(), env), { logger: pino({ level: 'silent' }), backends: fake.backends })),
    );
    if (!a || !b) throw new Error('gateways did not start');
    try {
      const challenge = await send(a.url, 'GET', '/weather');
      const accepted = (decodeHeader(challenge.headers['payment-required']) as { accepts: Record<string, unknown>[] }).accepts[0];
      if (!accepted) throw new Error('no requirement offered');
      const payment = paymentHeaderFor(accepted);
      const paid = await send(a.url, 'GET', '/weather', { headers: payment });
      expect(paid.status).toBe(200);
      const replay = await send(b.url, 'GET', '/weather', { headers: payment });
      expect(replay.status).toBe(402);
      expect(JSON.stringify(decodeHeader(replay.headers['payment-required']))).toContain('nonce');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }

    const dir = mkdtempSync(join(tmpdir(), 'x402-pg-cli-'));
    const configPath = join(dir, 'gateway.yaml');
    writeFileSync(configPath, gatewayYaml());
    const stdout: string[] = [];
    const stderr: string[] = [];
    const io: CliIo = { out: (line) => stdout.push(line), err: (line) => stderr.push(line), onSignal: () => {}, env };
    expect(await runCli(['receipts', '--config', configPath, '--json'], io)).toBe(0);
    const rows = JSON.parse(stdout.join('\n')) as { status: string; route: string }[];
    expect(rows.map((r) => [r.route, r.status])).toEqual([
      ['GET /weather', 'refused'],
      ['GET /weather', 'settled'],
    ]);
  });
});

describe('PostgreSQL unreachable (runs last: it stops the server)', () => {
  it('priced routes answer 503 with Retry-After and forward nothing, free routes serve, /readyz names the store; back when it is', async () => {
    const url = await server.newDatabase();
    const fake = fakePayments();
    const gw = await runGateway(parseTestConfig(gatewayYaml(), { DATABASE_URL: url }), { logger: pino({ level: 'silent' }), backends: fake.backends });
    const store = `postgres://127.0.0.1:${server.port}/${new URL(url).pathname.slice(1)}`;
    try {
      const challenge = await send(gw.url, 'GET', '/weather');
      const accepted = (decodeHeader(challenge.headers['payment-required']) as { accepts: Record<string, unknown>[] }).accepts[0];
      if (!accepted) throw new Error('no requirement offered');
      expect((await send(gw.adminUrl, 'GET', '/readyz')).json()).toMatchObject({ status: 'ready', ledger: { store, reachable: true } });

      await server.stop();
      const seenBefore = upstream.seen.length;
      const refused = await send(gw.url, 'GET', '/weather', { headers: paymentHeaderFor(accepted) });
      expect(refused.status).toBe(503);
      expect(refused.json()).toMatchObject({ code: 'GW_ERR_LEDGER_UNAVAILABLE' });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(upstream.seen.length).toBe(seenBefore);
      expect(fake.settled).toHaveLength(0);
      expect((await send(gw.url, 'GET', '/health')).status).toBe(200);
      const readyz = await send(gw.adminUrl, 'GET', '/readyz');
      expect(readyz.status).toBe(200);
      expect(readyz.json()).toMatchObject({ ledger: { store, reachable: false } });
      expect((await send(gw.adminUrl, 'GET', '/metrics')).body.toString()).toMatch(/^x402_gateway_ledger_up 0$/m);
      expect((await send(gw.adminUrl, 'GET', '/metrics')).body.toString()).toMatch(/^x402_gateway_ledger_errors_total\{operation="payerPenalty"\} [1-9]/m);

      await server.start();
      const paid = await send(gw.url, 'GET', '/weather', { headers: paymentHeaderFor(accepted) });
      expect(paid.status).toBe(200);
      expect(fake.settled).toHaveLength(1);
      expect((await send(gw.adminUrl, 'GET', '/readyz')).json()).toMatchObject({ ledger: { store, reachable: true } });
      expect((await send(gw.adminUrl, 'GET', '/metrics')).body.toString()).toMatch(/^x402_gateway_ledger_up 1$/m);
    } finally {
      await gw.close();
    }
  });
});
