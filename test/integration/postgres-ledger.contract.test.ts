/** The `Ledger` contract suite (test/contracts/ledger.contract.ts) on PostgresLedger, against a real server. */
import { afterAll, beforeAll } from 'vitest';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { ledgerContract } from '../contracts/ledger.contract.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

let server: TestPostgres;
let url: string | undefined;

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server.destroy();
});

ledgerContract(
  'PostgresLedger',
  async () => {
    url = await server.newDatabase();
    return PostgresLedger.open(url, { pool: 4 });
  },
  async () => {
    if (url !== undefined) await server.dropDatabase(url);
    url = undefined;
  },
);
