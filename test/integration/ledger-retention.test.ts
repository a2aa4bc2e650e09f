/**
 * `ledger.retention` through a running gateway: rows of outcomes that moved no money, past their
 * retention, are pruned in the background at start (in batches), counted in the metrics; money
 * rows, failures, re-deliveries and young rows stay.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { PRUNE_BATCH } from '../../src/ledger/retention.js';
import { receiptRow } from '../contracts/ledger.contract.js';
import { gatewayYamlHead, startGateway, UNREACHABLE_FACILITATOR_BASE } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const PAY_TO = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';
const DAY_MS = 86_400_000;

describe('ledger.retention', () => {
  it('prunes old rows that moved no money at start, in batches, and counts them; keeps the rest', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'x402-retention-')), 'ledger.db');
    const now = Date.now();
    const seed = new SqliteLedger(path);
    const old = now - 2 * DAY_MS;
    for (let i = 0; i <= PRUNE_BATCH; i++) await seed.record(receiptRow(`refused-${i}`, { time: old, status: 'refused' }));
    await seed.record(receiptRow('released', { time: old, status: 'not_charged' }));
    await seed.record(receiptRow('paid', { time: old, status: 'settled' }));
    await seed.record(receiptRow('failed', { time: old, status: 'settle_failed' }));
    await seed.record(receiptRow('recent', { time: now - DAY_MS / 2, status: 'refused' }));
    await seed.close();

    const upstream = await startUpstream();
    const gw = await startGateway(
      `${gatewayYamlHead({ payTo: PAY_TO, network: UNREACHABLE_FACILITATOR_BASE })}
ledger: { path: "${path}", retention: 1d }
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`,
      { ledgerPath: path },
    );
    try {
      await waitFor(async () => (await gw.ledger.receipts({ limit: 10_000 })).length === 3);
      expect((await gw.ledger.receipts({})).map((r) => r.requestId).sort()).toEqual(['failed', 'paid', 'recent']);
      expect((await gw.metrics.prunedRows.get()).values[0]?.value).toBe(PRUNE_BATCH + 2);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});
