/**
 * The authorization reconciler's pass over rows behind its two ports, with recording fakes: the
 * store (pending rows, the outcomes written, the lease) and the chain (blocks, the token's state
 * and logs). The e2e test (facilitator-pending-reconciled) covers it on a real chain; this one
 * pins what is hard to make happen there: a row the chain cannot answer for among others, a
 * used authorization without its event, a row another path finished first, and the lease.
 */
import { describe, expect, it } from 'vitest';
import { AuthorizationReconciler, FINALITY_MARGIN_SECONDS, GRACE_MS, type AuthorizationOutcome } from '../../src/payments/exact-evm/authorization-reconciler.js';
import type { ChainClient } from '../../src/payments/chain/client.js';
import type { PendingReceipt, Receipt } from '../../src/payments/ports.js';

const NOW_MS = 1_800_000_000_000;
const TOKEN = '0x833589fcd6edb6e08f4c7c32d4f71b54bda02913';
const BROKEN_TOKEN = '0x000000000000000000000000000000000000b0b0';
const TX = `0x${'cd'.repeat(32)}` as const;

function row(id: string, over: Partial<PendingReceipt> = {}): PendingReceipt {
  return {
    time: NOW_MS - GRACE_MS - 1_000, requestId: id, route: 'GET /paid', method: 'GET', path: '/paid', amount: '10000', asset: TOKEN, network: 'eip155:8453',
    payer: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', nonce: `0x${id.padStart(64, '0')}`, transaction: '', status: 'pending', reason: 'unexpected_settle_error',
    validBeforeSeconds: 1_800_000_300, ...over,
  };
}

interface Chain {
  /** The newest block's timestamp. */
  readonly latestSeconds: bigint;
  /** Nonces the token says are used. */
  readonly used: ReadonlySet<string>;
  /** Nonces with an AuthorizationUsed log (in transaction TX). */
  readonly logged: ReadonlySet<string>;
}

/** A chain client with one block per second from 0 to `latestSeconds`, and a token per `chain`; BROKEN_TOKEN's calls fail. */
function fakeClient(chain: Chain): ChainClient {
  const latest = chain.latestSeconds;
  return {
    getBlock: async (args: { blockTag?: string; blockNumber?: bigint }) =>
      args.blockNumber === undefined ? { number: latest, timestamp: latest } : { number: args.blockNumber, timestamp: args.blockNumber },
    readContract: async (args: { address: string; args: readonly [string, string] }) => {
      if (args.address === BROKEN_TOKEN) throw new Error('execution reverted');
      return chain.used.has(args.args[1]);
    },
    getLogs: async (args: { args: { nonce: string } }) => (chain.logged.has(args.args.nonce) ? [{ transactionHash: TX }] : []),
    getTransactionReceipt: async () => {
      throw new Error('not asked in these cases');
    },
  } as unknown as ChainClient;
}

function harness(rows: PendingReceipt[], chain: Chain, options: { finishedElsewhere?: string; lease?: boolean } = {}) {
  const written: Receipt[] = [];
  const outcomes: [string, AuthorizationOutcome][] = [];
  const errors: unknown[] = [];
  const reconciler = new AuthorizationReconciler({
    ledger: {
      pendingRows: async (network, olderThanMs) => rows.filter((r) => r.network === network && r.time < olderThanMs),
      record: async (receipt) => {
        written.push(receipt);
        return receipt.requestId !== options.finishedElsewhere;
      },
      holdLease: async () => options.lease ?? true,
    },
    client: fakeClient(chain),
    network: 'eip155:8453',
    clock: { nowMs: () => NOW_MS, nowSeconds: () => BigInt(NOW_MS / 1000) },
    holder: 'test',
    onOutcome: (r, outcome) => outcomes.push([r.requestId, outcome]),
    onError: (err) => errors.push(err),
  });
  return { reconciler, written, outcomes, errors };
}

describe('AuthorizationReconciler', () => {
  it('decides each row from the chain; a row it cannot answer for is reported once and holds up none after it', async () => {
    const expired = row('3', { validBeforeSeconds: 1_700_000_000 });
    const rows = [row('1', { asset: BROKEN_TOKEN }), row('2'), expired, row('4'), row('5', { time: NOW_MS })];
    const latestSeconds = BigInt(NOW_MS / 1000);
    const h = harness(rows, { latestSeconds, used: new Set([row('2').nonce]), logged: new Set([row('2').nonce]) });
    await h.reconciler.tick();
    expect(h.outcomes).toEqual([
      ['2', { status: 'settled', transaction: TX }],
      ['3', { status: 'settle_failed', reason: 'authorization_expired_unsettled' }],
    ]);
    expect(h.written.map((w) => [w.requestId, w.status, w.reason, w.transaction])).toEqual([
      ['2', 'settled', 'reconciled', TX],
      ['3', 'settle_failed', 'authorization_expired_unsettled', ''],
    ]);
    // Row 4: unused and still valid, waits. Row 5: younger than the grace, not read.
    expect(h.errors).toHaveLength(1);
    expect(String(h.errors[0])).toMatch(/execution reverted/);
  });

  it('an unused authorization is final only FINALITY_MARGIN_SECONDS past validBefore', async () => {
    const r = row('6', { validBeforeSeconds: 1_000 });
    const early = harness([r], { latestSeconds: 1_000n + FINALITY_MARGIN_SECONDS - 1n, used: new Set(), logged: new Set() });
    await early.reconciler.tick();
    expect(early.written).toEqual([]);
    const late = harness([r], { latestSeconds: 1_000n + FINALITY_MARGIN_SECONDS, used: new Set(), logged: new Set() });
    await late.reconciler.tick();
    expect(late.outcomes.map(([id, o]) => [id, o.status])).toEqual([['6', 'settle_failed']]);
  });

  it('used without an AuthorizationUsed log in its window (cancelled): left pending', async () => {
    const r = row('7');
    const h = harness([r], { latestSeconds: BigInt(NOW_MS / 1000), used: new Set([r.nonce]), logged: new Set() });
    await h.reconciler.tick();
    expect(h.written).toEqual([]);
    expect(h.errors).toEqual([]);
  });

  it('counts only what it wrote, and does nothing without the lease', async () => {
    const r = row('8');
    const chain = { latestSeconds: BigInt(NOW_MS / 1000), used: new Set([r.nonce]), logged: new Set([r.nonce]) };
    const first = harness([r], chain, { finishedElsewhere: '8' });
    await first.reconciler.tick();
    expect(first.written.map((w) => w.requestId)).toEqual(['8']);
    expect(first.outcomes).toEqual([]);
    const leaseless = harness([r], chain, { lease: false });
    await leaseless.reconciler.tick();
    expect(leaseless.written).toEqual([]);
  });
});
