/** The `Ledger` contract suite (test/contracts/ledger.contract.ts) on SqliteLedger, on a file and in memory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { ledgerContract } from '../contracts/ledger.contract.js';

let dir: string | undefined;

ledgerContract(
  'SqliteLedger on a file',
  async () => {
    dir = mkdtempSync(join(tmpdir(), 'x402-ledger-contract-'));
    return new SqliteLedger(join(dir, 'ledger.sqlite'));
  },
  () => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  },
);

ledgerContract('SqliteLedger in memory', async () => new SqliteLedger(':memory:'));
