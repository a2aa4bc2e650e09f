/**
 * The written contract of the `Ledger` port (src/payments/ports.ts), as one suite every store
 * runs: SQLite today (test/integration/sqlite-ledger.contract.test.ts), Postgres next. What a
 * store does beyond the port (group commit, its files, reopening) is tested beside the store.
 *
 * Times: the suite never controls a store's clock (a shared store may use its server's), so
 * penalty expiries are set an hour either side of the real time; the store's clock must be
 * within that of this process's.
 */
import { MAX_STORED_PATH_CHARS } from '../../src/ledger/receipt-rows.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Address } from '../../src/config/types.js';
import type { DeferredItem, Ledger, LoggedTransaction, NonceKey, Receipt, SettlementEntry } from '../../src/payments/ports.js';
import type { Hex } from '../../src/protocol/types.js';

const ASSET: Address = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913';
const PAYER: Address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const OTHER_PAYER: Address = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const HOUR = 3_600;
const SETTLER: Address = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const PAY_TO: Address = '0x209693Bc6afc0C5328bA36FaF03C514EF312287C';

/** A settlement entry at transaction nonce `nonce` of SETTLER, paying for `requestIds`. */
export function settlementEntry(nonce: number, requestIds: string[]): SettlementEntry {
  return {
    chainId: 8453,
    settler: SETTLER,
    nonce,
    requestIds,
    asset: ASSET,
    payer: PAYER,
    payTo: PAY_TO,
    amount: '10000',
    authorizationNonce: `0x${nonce.toString(16).padStart(64, 'c')}`,
    validBefore: 2_000_000_000,
  };
}

/** A logged transaction `n` (hash and bytes made up; the store does not read them). */
export function loggedTx(n: number): LoggedTransaction {
  return { hash: `0x${n.toString(16).padStart(64, 'b')}`, raw: `0x02f8${n.toString(16).padStart(4, '0')}`, maxFeePerGas: `${1_000_000_000 + n}`, maxPriorityFeePerGas: '1000000' };
}

/** Nonce key `n` of PAYER on Base's USDC; override any field. */
export function nonceKey(n: number, overrides: Partial<NonceKey> = {}): NonceKey {
  return { chainId: 8453, asset: ASSET, payer: PAYER, nonce: `0x${n.toString(16).padStart(64, '0')}`, ...overrides };
}

/** A receipt row of request `id`; override any field. */
export function receiptRow(id: string, overrides: Partial<Receipt> = {}): Receipt {
  return {
    time: 1_000,
    requestId: id,
    route: 'GET /x',
    method: 'GET',
    path: '/x',
    amount: '10000',
    asset: ASSET,
    network: 'eip155:8453',
    payer: PAYER,
    nonce: '0x01',
    transaction: '0xab',
    status: 'settled',
    reason: '',
    ...overrides,
  };
}

/** Deferred item `n` of `payer` for request `requestId`, `value` atomic units. */
export function deferredItem(n: number, requestId: string, value = 1_000n, payer: Address = PAYER): DeferredItem {
  return {
    id: `item-${n}-${'f'.repeat(24)}`,
    requestId,
    route: 'GET /x',
    chainId: 8453,
    asset: ASSET,
    authorization: { from: payer, to: PAY_TO, value, validAfter: 0n, validBefore: 2_000_000_000n, nonce: `0x${n.toString(16).padStart(64, 'd')}` },
    signature: `0x${'12'.repeat(65)}`,
    queuedAtMs: 1_000 + n,
  };
}

const txHash = (n: number): Hex => `0x${n.toString(16).padStart(64, 'a')}`;
/** The same hex in other letters: its case carries no meaning. */
const upperHex = (hex: Hex): Hex => `0x${hex.slice(2).toUpperCase()}`;
const lowerHex = (hex: Hex): Hex => `0x${hex.slice(2).toLowerCase()}`;
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * Defines the `Ledger` contract suite for one store. `makeLedger` gives a fresh, empty store per
 * test; `cleanup` runs after the store is closed (drop its files or schema).
 */
export function ledgerContract(name: string, makeLedger: () => Promise<Ledger>, cleanup?: () => Promise<void> | void): void {
  describe(`Ledger contract: ${name}`, () => {
    let ledger: Ledger;
    let closed: boolean;

    beforeEach(async () => {
      ledger = await makeLedger();
      closed = false;
    });

    afterEach(async () => {
      if (!closed) await ledger.close();
      await cleanup?.();
    });

    /** Closes the store inside a test; the suite does not close it again. */
    const close = async (): Promise<void> => {
      closed = true;
      await ledger.close();
    };

    describe('reserveNonce / releaseNonce', () => {
      it('reserves a key once: false while it is reserved, true again once released', async () => {
        expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + HOUR)).toBe(true);
        expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + HOUR)).toBe(false);
        await ledger.releaseNonce(nonceKey(1));
        expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + HOUR)).toBe(true);
      });

      it('keys differ by chain, asset, payer and nonce, but not by the case of their hex', async () => {
        const expires = nowSeconds() + HOUR;
        expect(await ledger.reserveNonce(nonceKey(1), expires)).toBe(true);
        expect(await ledger.reserveNonce(nonceKey(2), expires)).toBe(true);
        expect(await ledger.reserveNonce(nonceKey(1, { chainId: 84532 }), expires)).toBe(true);
        expect(await ledger.reserveNonce(nonceKey(1, { asset: '0xaf88d065e77c8cC2239327C5EDb3A432268e5831' }), expires)).toBe(true);
        expect(await ledger.reserveNonce(nonceKey(1, { payer: OTHER_PAYER }), expires)).toBe(true);
        const key = nonceKey(0xabcdef);
        expect(await ledger.reserveNonce(key, expires)).toBe(true);
        expect(await ledger.reserveNonce({ ...key, asset: upperHex(key.asset), payer: lowerHex(key.payer), nonce: upperHex(key.nonce) }, expires)).toBe(false);
      });

      it('releasing a key that was never reserved is harmless', async () => {
        await ledger.releaseNonce(nonceKey(9));
        expect(await ledger.reserveNonce(nonceKey(9), nowSeconds() + HOUR)).toBe(true);
      });

      it('N concurrent reservations of one key: exactly one is true', async () => {
        const answers = await Promise.all(Array.from({ length: 20 }, () => ledger.reserveNonce(nonceKey(3), nowSeconds() + HOUR)));
        expect(answers.filter(Boolean)).toHaveLength(1);
      });

      it('concurrent reservations of distinct keys are all true', async () => {
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ledger.reserveNonce(nonceKey(100 + i), nowSeconds() + HOUR)));
        expect(answers).toEqual(Array.from({ length: 20 }, () => true));
      });
    });

    describe('beginSettlement', () => {
      it('keeps the nonce and writes the pending row', async () => {
        expect(await ledger.reserveNonce(nonceKey(5), nowSeconds() + HOUR)).toBe(true);
        const pending = receiptRow('p', { status: 'pending', reason: 'settling', transaction: '' });
        await ledger.beginSettlement(nonceKey(5), pending);
        expect(await ledger.reserveNonce(nonceKey(5), nowSeconds() + 2 * HOUR)).toBe(false); // kept nonces are never re-reserved
        expect(await ledger.receipts({})).toEqual([pending]);
      });

      it('keeps the nonce for good: even past the expiry it was reserved with', async () => {
        expect(await ledger.reserveNonce(nonceKey(6), nowSeconds() - HOUR)).toBe(true);
        await ledger.beginSettlement(nonceKey(6), receiptRow('p', { status: 'pending' }));
        expect(await ledger.reserveNonce(nonceKey(6), nowSeconds() + HOUR)).toBe(false);
      });

      it('a kept nonce can still be released (a settlement that certainly never landed)', async () => {
        expect(await ledger.reserveNonce(nonceKey(7), nowSeconds() + HOUR)).toBe(true);
        await ledger.beginSettlement(nonceKey(7), receiptRow('p', { status: 'pending' }));
        await ledger.releaseNonce(nonceKey(7));
        expect(await ledger.reserveNonce(nonceKey(7), nowSeconds() + HOUR)).toBe(true);
      });
    });

    describe('claimProof', () => {
      it('claims a tx hash once, per chain, whatever the case of its hex', async () => {
        expect(await ledger.claimProof(8453, txHash(1))).toBe(true);
        expect(await ledger.claimProof(8453, txHash(1))).toBe(false);
        expect(await ledger.claimProof(8453, upperHex(txHash(1)))).toBe(false);
        expect(await ledger.claimProof(84532, txHash(1))).toBe(true); // another chain
        expect(await ledger.claimProof(8453, txHash(2))).toBe(true);
      });

      it('N concurrent claims of one hash: exactly one is true', async () => {
        const answers = await Promise.all(Array.from({ length: 20 }, () => ledger.claimProof(8453, txHash(3))));
        expect(answers.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('record / receipts', () => {
      it('gives a recorded row back field for field', async () => {
        const row = receiptRow('r1', { status: 'refused', reason: 'invalid_exact_evm_signature', transaction: '', nonce: `0x${'cd'.repeat(32)}` });
        await ledger.record(row);
        expect(await ledger.receipts({})).toEqual([row]);
      });

      it('newest first; rows of one time in the reverse order recorded', async () => {
        await ledger.record(receiptRow('a', { time: 1_000 }));
        await ledger.record(receiptRow('b', { time: 3_000 }));
        await ledger.record(receiptRow('c', { time: 2_000 }));
        await ledger.record(receiptRow('d', { time: 2_000 }));
        expect((await ledger.receipts({})).map((r) => r.requestId)).toEqual(['b', 'd', 'c', 'a']);
      });

      it('`limit` keeps the newest rows; `since` keeps rows at or after it', async () => {
        for (const [id, time] of [['a', 1_000], ['b', 2_000], ['c', 3_000], ['d', 4_000]] as const) await ledger.record(receiptRow(id, { time }));
        expect((await ledger.receipts({ limit: 2 })).map((r) => r.requestId)).toEqual(['d', 'c']);
        expect((await ledger.receipts({ since: 2_000 })).map((r) => r.requestId)).toEqual(['d', 'c', 'b']);
        expect((await ledger.receipts({ since: 2_000, limit: 1 })).map((r) => r.requestId)).toEqual(['d']);
        expect(await ledger.receipts({ since: 5_000 })).toEqual([]);
      });

      it('one row per request: a later record of the same request replaces its outcome', async () => {
        await ledger.reserveNonce(nonceKey(8), nowSeconds() + HOUR);
        await ledger.beginSettlement(nonceKey(8), receiptRow('s', { time: 1_000, status: 'pending', reason: 'settling', transaction: '' }));
        const settled = receiptRow('s', { time: 1_500, status: 'settled', reason: '', transaction: `0x${'ef'.repeat(32)}` });
        expect(await ledger.record(settled)).toBe(true);
        expect(await ledger.receipts({})).toEqual([settled]);
      });

      it('a settlement outcome is final: a later write to its row is left out and says so', async () => {
        const settled = receiptRow('f', { status: 'settled', reason: 'reconciled', transaction: `0x${'ef'.repeat(32)}` });
        expect(await ledger.record(settled)).toBe(true);
        // The settling request's own writes, landing after a reconciler finished the row.
        expect(await ledger.record(receiptRow('f', { status: 'settled', reason: 'client_closed', transaction: `0x${'ef'.repeat(32)}` }))).toBe(false);
        expect(await ledger.record(receiptRow('f', { status: 'pending', reason: 'settlement_pending', transaction: `0x${'ef'.repeat(32)}` }))).toBe(false);
        expect(await ledger.receipts({})).toEqual([settled]);
        const failed = receiptRow('g', { status: 'settle_failed', reason: 'nonce_used_elsewhere', transaction: '' });
        expect(await ledger.record(failed)).toBe(true);
        expect(await ledger.record(receiptRow('g', { status: 'settled' }))).toBe(false);
        expect((await ledger.receipts({})).find((r) => r.requestId === 'g')).toEqual(failed);
      });

      it('every write is visible to the next call once it resolves', async () => {
        await Promise.all([ledger.record(receiptRow('x')), ledger.record(receiptRow('y', { status: 'not_charged' }))]);
        expect((await ledger.receipts({})).map((r) => r.requestId).sort()).toEqual(['x', 'y']);
      });
    });

    describe('prune (ledger.retention)', () => {
      it('deletes old rows of outcomes that moved no money, up to the limit; keeps money rows, failures, re-deliveries and newer rows', async () => {
        const old = { time: 1_000 };
        for (const [id, status] of [['r1', 'refused'], ['r2', 'refused'], ['n', 'not_charged'], ['p', 'proof_refused']] as const) await ledger.record(receiptRow(id, { ...old, status }));
        for (const [id, status] of [['s', 'settled'], ['q', 'pending'], ['f', 'settle_failed'], ['a', 'proof_accepted'], ['d', 'redelivered']] as const) {
          await ledger.record(receiptRow(id, { ...old, status }));
        }
        await ledger.record(receiptRow('young', { time: 5_000, status: 'refused' }));
        expect(await ledger.prune(2_000, 3)).toBe(3);
        expect(await ledger.prune(2_000, 3)).toBe(1);
        expect(await ledger.prune(2_000, 3)).toBe(0);
        expect((await ledger.receipts({})).map((r) => r.requestId).sort()).toEqual(['a', 'd', 'f', 'q', 's', 'young']);
      });

      it('keeps at most MAX_STORED_PATH_CHARS of a path', async () => {
        await ledger.record(receiptRow('long', { path: `/${'a'.repeat(8_000)}` }));
        const [row] = await ledger.receipts({});
        expect(row?.path).toHaveLength(MAX_STORED_PATH_CHARS);
        expect(row?.path.endsWith('a…')).toBe(true);
      });

      it('deletes reservations that have expired, never a live or kept one', async () => {
        await ledger.reserveNonce(nonceKey(1), nowSeconds() - 10);
        await ledger.reserveNonce(nonceKey(2), nowSeconds() + HOUR);
        await ledger.reserveNonce(nonceKey(3), nowSeconds() - 10);
        await ledger.beginSettlement(nonceKey(3), receiptRow('kept', { status: 'pending', transaction: '' }));
        expect(await ledger.prune(0, 100)).toBe(1);
        expect(await ledger.reserveNonce(nonceKey(2), nowSeconds() + HOUR)).toBe(false);
        expect(await ledger.reserveNonce(nonceKey(3), nowSeconds() + HOUR)).toBe(false);
        expect(await ledger.reserveNonce(nonceKey(1), nowSeconds() + HOUR)).toBe(true);
      });
    });

    describe('penalisePayer / payerPenalty (refused after a reverted settlement)', () => {
      it('refuses a payer until its expiry, by chain, whatever the address case', async () => {
        const until = nowSeconds() + HOUR;
        expect(await ledger.payerPenalty(8453, PAYER)).toBeUndefined();
        await ledger.penalisePayer(8453, PAYER, until);
        expect(await ledger.payerPenalty(8453, PAYER)).toBe(until);
        expect(await ledger.payerPenalty(8453, lowerHex(PAYER))).toBe(until);
        expect(await ledger.payerPenalty(84532, PAYER)).toBeUndefined(); // another chain
        expect(await ledger.payerPenalty(8453, OTHER_PAYER)).toBeUndefined(); // another payer
      });

      it('a later expiry wins over an earlier one, never the reverse', async () => {
        const now = nowSeconds();
        await ledger.penalisePayer(8453, PAYER, now + HOUR);
        await ledger.penalisePayer(8453, PAYER, now + 10);
        expect(await ledger.payerPenalty(8453, PAYER)).toBe(now + HOUR);
        await ledger.penalisePayer(8453, lowerHex(PAYER), now + 2 * HOUR);
        expect(await ledger.payerPenalty(8453, PAYER)).toBe(now + 2 * HOUR);
      });

      it('a refusal whose expiry has passed is not in force', async () => {
        await ledger.penalisePayer(8453, PAYER, nowSeconds() - HOUR);
        expect(await ledger.payerPenalty(8453, PAYER)).toBeUndefined();
      });
    });

    describe('settlement log: nonces', () => {
      it('knows no count until a floor is set, then hands out consecutive nonces, each once', async () => {
        expect(await ledger.takeNonce(8453, SETTLER)).toBeUndefined();
        await ledger.raiseNonceFloor(8453, SETTLER, 7);
        const taken = await Promise.all(Array.from({ length: 20 }, () => ledger.takeNonce(8453, SETTLER)));
        expect([...taken].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(Array.from({ length: 20 }, (_, i) => 7 + i));
        expect(await ledger.takeNonce(8453, lowerHex(SETTLER))).toBe(27);
        expect(await ledger.takeNonce(1, SETTLER)).toBeUndefined();
      });

      it('a floor only ever raises the count; a nonce is handed back only while it is the last one taken', async () => {
        await ledger.raiseNonceFloor(8453, SETTLER, 5);
        await ledger.raiseNonceFloor(8453, SETTLER, 3);
        expect(await ledger.takeNonce(8453, SETTLER)).toBe(5);
        expect(await ledger.takeNonce(8453, SETTLER)).toBe(6);
        expect(await ledger.returnNonce({ chainId: 8453, settler: SETTLER, nonce: 5 })).toBe(false);
        expect(await ledger.returnNonce({ chainId: 8453, settler: SETTLER, nonce: 6 })).toBe(true);
        expect(await ledger.takeNonce(8453, SETTLER)).toBe(6);
        await ledger.raiseNonceFloor(8453, SETTLER, 40);
        expect(await ledger.takeNonce(8453, SETTLER)).toBe(40);
      });
    });

    describe('settlement log: entries', () => {
      const slot = (nonce: number) => ({ chainId: 8453, settler: SETTLER, nonce });

      it('logs an entry with its transaction and puts the hash on its pending row; open entries come back lowest nonce first', async () => {
        await ledger.record(receiptRow('r1', { status: 'pending', transaction: '' }));
        await ledger.record(receiptRow('r2', { status: 'pending', transaction: '' }));
        await ledger.logSettlement(settlementEntry(4, ['r2']), loggedTx(4));
        await ledger.logSettlement(settlementEntry(3, ['r1']), loggedTx(3));
        const open = await ledger.openSettlements(8453, SETTLER, 10);
        expect(open.map((e) => e.nonce)).toEqual([3, 4]);
        expect(open[0]).toMatchObject({ ...settlementEntry(3, ['r1']), settler: lowerHex(SETTLER), asset: lowerHex(ASSET), payer: lowerHex(PAYER), payTo: lowerHex(PAY_TO), state: 'open' });
        expect(open[0]?.transactions).toEqual([{ ...loggedTx(3), sentAtMs: expect.any(Number) }]);
        expect(open[0]?.receipts).toEqual([{ requestId: 'r1', status: 'pending', route: 'GET /x' }]);
        const rows = await ledger.receipts({});
        expect(rows.find((r) => r.requestId === 'r1')?.transaction).toBe(loggedTx(3).hash);
        expect(await ledger.openSettlements(8453, SETTLER, 1)).toHaveLength(1);
        expect(await ledger.openSettlements(8453, OTHER_PAYER, 10)).toEqual([]);
      });

      it('one entry per slot: a second at the same nonce is refused', async () => {
        await ledger.logSettlement(settlementEntry(1, []), loggedTx(1));
        await expect(ledger.logSettlement(settlementEntry(1, []), loggedTx(2))).rejects.toThrow();
      });

      it('a replacement joins its slot, oldest first, and reopens a void one', async () => {
        await ledger.logSettlement(settlementEntry(2, []), loggedTx(2));
        await ledger.voidSettlement(slot(2));
        expect((await ledger.openSettlements(8453, SETTLER, 10))[0]?.state).toBe('void');
        await ledger.logReplacement(slot(2), loggedTx(20));
        const [entry] = await ledger.openSettlements(8453, SETTLER, 10);
        expect(entry?.state).toBe('open');
        expect(entry?.transactions.map((t) => t.hash)).toEqual([loggedTx(2).hash, loggedTx(20).hash]);
      });

      it('closing with an outcome writes it to the rows still pending, says which, and leaves finished rows alone; a closed entry is not open', async () => {
        await ledger.record(receiptRow('p', { status: 'pending', transaction: '' }));
        await ledger.record(receiptRow('s', { status: 'settled', reason: 'in line' }));
        await ledger.logSettlement(settlementEntry(9, ['p', 's']), loggedTx(9));
        expect(await ledger.closeSettlement(slot(9), { status: 'settled', transaction: loggedTx(9).hash, reason: 'reconciled' })).toEqual(['p']);
        expect(await ledger.openSettlements(8453, SETTLER, 10)).toEqual([]);
        const rows = await ledger.receipts({});
        expect(rows.find((r) => r.requestId === 'p')).toMatchObject({ status: 'settled', transaction: loggedTx(9).hash, reason: 'reconciled' });
        expect(rows.find((r) => r.requestId === 's')).toMatchObject({ status: 'settled', reason: 'in line' });
        await ledger.logSettlement(settlementEntry(10, []), loggedTx(10));
        expect(await ledger.closeSettlement(slot(10))).toEqual([]);
        expect(await ledger.openSettlements(8453, SETTLER, 10)).toEqual([]);
      });

      it('closing after the settling request finished every row writes none: the outcome is counted once', async () => {
        await ledger.record(receiptRow('q', { status: 'pending', transaction: '' }));
        await ledger.logSettlement(settlementEntry(11, ['q']), loggedTx(11));
        const [seen] = await ledger.openSettlements(8453, SETTLER, 10);
        expect(seen?.receipts).toEqual([{ requestId: 'q', status: 'pending', route: 'GET /x' }]);
        // The settling request's own outcome lands between the reconciler's read and its close.
        await ledger.record(receiptRow('q', { status: 'settled', transaction: loggedTx(11).hash }));
        expect(await ledger.closeSettlement(slot(11), { status: 'settled', transaction: loggedTx(11).hash, reason: 'reconciled' })).toEqual([]);
      });
    });

    describe('settlement queue (settlement: deferred)', () => {
      const slot = (nonce: number) => ({ chainId: 8453, settler: SETTLER, nonce });
      const caps = { perPayer: 10_000n, total: 100_000n };
      const queuedRow = (id: string, payer: Address = PAYER) => receiptRow(id, { status: 'queued', transaction: '', reason: 'deferred', payer });
      const enqueue = (n: number, value = 1_000n, payer: Address = PAYER, limits = caps) =>
        ledger.enqueueDeferred(nonceKey(n, { payer }), queuedRow(`r${n}`, payer), deferredItem(n, `r${n}`, value, payer), limits);

      it('enqueues in one write: the nonce kept, the queued row, the item; items come back oldest first, every field intact', async () => {
        expect(await ledger.reserveNonce(nonceKey(2), nowSeconds() + HOUR)).toBe(true);
        expect(await enqueue(2)).toBe(true);
        expect(await enqueue(1)).toBe(true);
        const queued = await ledger.queuedDeferred(8453, 10);
        expect(queued).toEqual([1, 2].map((n) => ({ ...deferredItem(n, `r${n}`), asset: lowerHex(ASSET), authorization: { ...deferredItem(n, `r${n}`).authorization, from: lowerHex(PAYER), to: lowerHex(PAY_TO) } })));
        expect(await ledger.queuedDeferred(8453, 1)).toHaveLength(1);
        expect(await ledger.queuedDeferred(1, 10)).toEqual([]);
        // The nonce is kept: no later request can reserve it.
        expect(await ledger.reserveNonce(nonceKey(2), nowSeconds() + HOUR)).toBe(false);
        expect((await ledger.receipts({})).map((r) => r.status)).toEqual(['queued', 'queued']);
        expect(await ledger.deferredStatus(deferredItem(1, 'r1').id)).toEqual({ id: deferredItem(1, 'r1').id, requestId: 'r1', state: 'queued', transaction: '', reason: '', queuedAtMs: 1_001 });
        expect(await ledger.deferredStatus('no-such-item')).toBeUndefined();
      });

      it('the exposure caps hold exactly, per payer and in total, even when enqueued at once', async () => {
        // 10 at once of 1,000 each for a payer capped at 10,000: all fit; the 11th does not.
        const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => enqueue(10 + i)));
        expect(answers.every(Boolean)).toBe(true);
        expect(await enqueue(20)).toBe(false);
        // Refused writes nothing: no row, no item, the nonce free.
        expect((await ledger.receipts({})).some((r) => r.requestId === 'r20')).toBe(false);
        expect(await ledger.reserveNonce(nonceKey(20), nowSeconds() + HOUR)).toBe(true);
        // Another payer has its own cap, under the shared total.
        expect(await enqueue(30, 10_000n, OTHER_PAYER)).toBe(true);
        expect(await enqueue(31, 1n, OTHER_PAYER)).toBe(false);
        const tight = { perPayer: 100_000n, total: 20_001n };
        expect(await enqueue(32, 1n, OTHER_PAYER, { ...tight, perPayer: 10_001n })).toBe(true);
        expect(await enqueue(33, 1n, PAYER, tight)).toBe(false);
        // Concurrent enqueues past a cap: exactly as many as fit are taken.
        const many = await Promise.all(Array.from({ length: 8 }, (_, i) => enqueue(40 + i, 1_000n, PAYER, { perPayer: 100_000n, total: 25_001n })));
        expect(many.filter(Boolean)).toHaveLength(5);
        const stats = await ledger.queueStats();
        expect(stats.count).toBe(10 + 1 + 1 + 5);
        expect(stats.amounts.get(`8453:${lowerHex(ASSET)}`)).toBe(25_001n);
        expect(stats.oldestQueuedAtMs).toBe(1_010);
      });

      it('amounts are exact far beyond a float: 18-decimal values add and subtract to the unit', async () => {
        const big = 123_456_789_012_345_678_901_234_567n;
        const roomy = { perPayer: big * 3n, total: big * 3n };
        expect(await enqueue(1, big, PAYER, roomy)).toBe(true);
        expect(await enqueue(2, big + 1n, PAYER, roomy)).toBe(true);
        expect(await enqueue(3, big, PAYER, roomy)).toBe(false);
        expect((await ledger.queueStats()).amounts.get(`8453:${lowerHex(ASSET)}`)).toBe(big * 2n + 1n);
        await ledger.finishDeferred([{ id: deferredItem(1, 'r1').id, state: 'settled', transaction: loggedTx(1).hash, reason: '' }]);
        expect((await ledger.queueStats()).amounts.get(`8453:${lowerHex(ASSET)}`)).toBe(big + 1n);
      });

      it('a batch logs its entry and moves its items to batched in one write; finishing writes each outcome once, to the item and its row, and frees the exposure', async () => {
        for (const n of [1, 2, 3]) expect(await enqueue(n)).toBe(true);
        const ids = [1, 2].map((n) => deferredItem(n, `r${n}`).id);
        await ledger.logBatch(settlementEntry(7, ['r1', 'r2']), loggedTx(7), ids);
        expect((await ledger.queuedDeferred(8453, 10)).map((i) => i.requestId)).toEqual(['r3']);
        expect((await ledger.batchItems(slot(7))).map((i) => i.id)).toEqual(ids);
        expect(await ledger.deferredStatus(ids[0]!)).toMatchObject({ state: 'batched', transaction: loggedTx(7).hash });
        expect((await ledger.openSettlements(8453, SETTLER, 10)).map((e) => e.nonce)).toEqual([7]);
        // The reconciler's close of a batch slot writes no row: a batch's rows are queued, not pending.
        const written = await ledger.finishDeferred([
          { id: ids[0]!, state: 'settled', transaction: loggedTx(7).hash, reason: '' },
          { id: ids[1]!, state: 'failed', transaction: loggedTx(7).hash, reason: 'transfer_failed_in_batch' },
        ]);
        expect([...written].sort()).toEqual(['r1', 'r2']);
        // Twice: nothing more is written or freed.
        expect(await ledger.finishDeferred([{ id: ids[0]!, state: 'failed', transaction: '', reason: 'late' }])).toEqual([]);
        const rows = await ledger.receipts({});
        expect(rows.find((r) => r.requestId === 'r1')).toMatchObject({ status: 'settled', transaction: loggedTx(7).hash });
        expect(rows.find((r) => r.requestId === 'r2')).toMatchObject({ status: 'settle_failed', reason: 'transfer_failed_in_batch' });
        expect(await ledger.deferredStatus(ids[1]!)).toMatchObject({ state: 'failed', reason: 'transfer_failed_in_batch' });
        expect(await ledger.batchItems(slot(7))).toEqual([]);
        const stats = await ledger.queueStats();
        expect(stats.count).toBe(1);
        expect(stats.amounts.get(`8453:${lowerHex(ASSET)}`)).toBe(1_000n);
        // Exposure freed: the payer may defer up to its cap again.
        expect(await enqueue(4, 9_000n)).toBe(true);
      });

      it('remembers when a deferred settlement of a payer last failed, per chain; a settled one is no failure', async () => {
        expect(await ledger.lastDeferredFailure(8453, PAYER)).toBeUndefined();
        for (const n of [1, 2]) expect(await enqueue(n)).toBe(true);
        const before = Date.now();
        await ledger.finishDeferred([{ id: deferredItem(1, 'r1').id, state: 'settled', transaction: loggedTx(1).hash, reason: '' }]);
        expect(await ledger.lastDeferredFailure(8453, PAYER)).toBeUndefined();
        await ledger.finishDeferred([{ id: deferredItem(2, 'r2').id, state: 'failed', transaction: '', reason: 'authorization_failed_before_batch' }]);
        const at = await ledger.lastDeferredFailure(8453, upperHex(PAYER) as Address);
        expect(at).toBeGreaterThanOrEqual(before - 1_000);
        expect(at).toBeLessThanOrEqual(Date.now() + 1_000);
        expect(await ledger.lastDeferredFailure(1, PAYER)).toBeUndefined();
        expect(await ledger.lastDeferredFailure(8453, OTHER_PAYER)).toBeUndefined();
      });

      it('a batch is logged all or nothing: when another batcher took one of its items, nothing is written', async () => {
        for (const n of [1, 2, 3]) expect(await enqueue(n)).toBe(true);
        const id = (n: number) => deferredItem(n, `r${n}`).id;
        expect(await ledger.logBatch(settlementEntry(5, ['r1', 'r2']), loggedTx(5), [id(1), id(2)])).toBe(true);
        // A second batcher read items 2 and 3 as queued before the first logged its batch.
        expect(await ledger.logBatch(settlementEntry(6, ['r2', 'r3']), loggedTx(6), [id(2), id(3)])).toBe(false);
        expect((await ledger.openSettlements(8453, SETTLER, 10)).map((e) => e.nonce)).toEqual([5]);
        expect(await ledger.deferredStatus(id(3))).toMatchObject({ state: 'queued', transaction: '' });
        expect(await ledger.deferredStatus(id(2))).toMatchObject({ state: 'batched', transaction: loggedTx(5).hash });
      });

      it('a batch whose slot can never be mined puts its items back in the queue, in their order', async () => {
        for (const n of [1, 2]) expect(await enqueue(n)).toBe(true);
        const ids = [1, 2].map((n) => deferredItem(n, `r${n}`).id);
        await ledger.logBatch(settlementEntry(8, ['r1', 'r2']), loggedTx(8), ids);
        expect(await ledger.queuedDeferred(8453, 10)).toEqual([]);
        expect(await ledger.requeueBatch(slot(8))).toBe(2);
        expect((await ledger.queuedDeferred(8453, 10)).map((i) => i.id)).toEqual(ids);
        expect(await ledger.deferredStatus(ids[0]!)).toMatchObject({ state: 'queued', transaction: '' });
        expect(await ledger.requeueBatch(slot(8))).toBe(0);
      });

      it('a queued row is a money row: a later plain record does not overwrite its outcome once finished', async () => {
        expect(await enqueue(1)).toBe(true);
        await ledger.finishDeferred([{ id: deferredItem(1, 'r1').id, state: 'settled', transaction: loggedTx(1).hash, reason: '' }]);
        expect(await ledger.record(queuedRow('r1'))).toBe(false);
        expect((await ledger.receipts({}))[0]).toMatchObject({ status: 'settled' });
      });
    });

    describe('delivery of a kept nonce', () => {
      const terms = { resource: 'GET https://gw.example/x', signature: 'ab'.repeat(32) };

      it('is known only once kept, with its terms and the status of the row it settled', async () => {
        expect(await ledger.deliveryOf(nonceKey(1))).toBeUndefined();
        await ledger.reserveNonce(nonceKey(1), nowSeconds() + HOUR);
        expect(await ledger.deliveryOf(nonceKey(1))).toBeUndefined();
        await ledger.beginSettlement(nonceKey(1), receiptRow('paid', { status: 'pending', transaction: '' }), terms);
        expect(await ledger.deliveryOf(nonceKey(1))).toEqual({ ...terms, requestId: 'paid', ended: false, delivered: false, redeliveries: 0, status: 'pending', transaction: '', payer: PAYER, reason: '' });
        await ledger.record(receiptRow('paid', { status: 'settled', transaction: txHash(1) }));
        expect(await ledger.deliveryOf(nonceKey(1))).toMatchObject({ status: 'settled', transaction: txHash(1) });
      });

      it('counts re-deliveries up to the most allowed, and none once an answer was delivered', async () => {
        await ledger.reserveNonce(nonceKey(2), nowSeconds() + HOUR);
        await ledger.beginSettlement(nonceKey(2), receiptRow('two', { status: 'pending' }), terms);
        const claims = await Promise.all(Array.from({ length: 5 }, () => ledger.claimRedelivery(nonceKey(2), 3)));
        expect(claims.filter(Boolean)).toHaveLength(3);
        expect(await ledger.deliveryOf(nonceKey(2))).toMatchObject({ redeliveries: 3, delivered: false });

        await ledger.reserveNonce(nonceKey(3), nowSeconds() + HOUR);
        await ledger.beginSettlement(nonceKey(3), receiptRow('three', { status: 'pending' }), terms);
        await ledger.answerEnded(nonceKey(3), false);
        expect(await ledger.deliveryOf(nonceKey(3))).toMatchObject({ ended: true, delivered: false });
        await ledger.answerEnded(nonceKey(3), true);
        await ledger.answerEnded(nonceKey(3), false);
        expect(await ledger.claimRedelivery(nonceKey(3), 3)).toBe(false);
        expect(await ledger.deliveryOf(nonceKey(3))).toMatchObject({ ended: true, delivered: true, redeliveries: 0 });
        expect(await ledger.claimRedelivery(nonceKey(4), 3)).toBe(false);
      });
    });

    describe('pendingReceipts', () => {
      it('counts the pending rows and gives the oldest one\'s time', async () => {
        expect(await ledger.pendingReceipts()).toEqual({ count: 0, oldestTimeMs: undefined });
        await ledger.record(receiptRow('a', { status: 'pending', time: 5_000 }));
        await ledger.record(receiptRow('b', { status: 'pending', time: 3_000 }));
        await ledger.record(receiptRow('c', { status: 'settled', time: 1_000 }));
        expect(await ledger.pendingReceipts()).toEqual({ count: 2, oldestTimeMs: 3_000 });
        await ledger.record(receiptRow('b', { status: 'settled', time: 6_000 }));
        expect(await ledger.pendingReceipts()).toEqual({ count: 1, oldestTimeMs: 5_000 });
      });
    });

    describe('hourlyTotals and receipts by status', () => {
      it('counts and sums rows per hour, route, network, asset and status, exactly, from a time on', async () => {
        const H = 3_600_000;
        await ledger.record(receiptRow('a', { time: 10 * H + 5, amount: '10000' }));
        await ledger.record(receiptRow('b', { time: 10 * H + 9, amount: '9007199254740993' })); // above 2^53
        await ledger.record(receiptRow('c', { time: 11 * H, amount: '1', route: 'GET /y' }));
        await ledger.record(receiptRow('d', { time: 11 * H + 1, amount: '', status: 'refused', transaction: '' }));
        await ledger.record(receiptRow('e', { time: 11 * H + 2, amount: '5', status: 'refused', transaction: '' }));
        await ledger.record(receiptRow('old', { time: 9 * H, amount: '7' }));
        const totals = await ledger.hourlyTotals(10 * H);
        const key = (t: { hourStartMs: number; route: string; status: string }) => `${t.hourStartMs / H} ${t.route} ${t.status}`;
        expect(Object.fromEntries(totals.map((t) => [key(t), [t.count, t.atomic, t.network, t.asset.toLowerCase()]]))).toEqual({
          '10 GET /x settled': [2, '9007199254750993', 'eip155:8453', ASSET.toLowerCase()],
          '11 GET /y settled': [1, '1', 'eip155:8453', ASSET.toLowerCase()],
          '11 GET /x refused': [2, '5', 'eip155:8453', ASSET.toLowerCase()],
        });
        expect(await ledger.hourlyTotals(12 * H)).toEqual([]);
        // A partial hour is left out.
        expect(new Set((await ledger.hourlyTotals(10 * H + 1)).map((t) => t.hourStartMs / H))).toEqual(new Set([11]));
        expect((await ledger.receipts({ since: 10 * H, status: 'refused' })).map((r) => r.requestId)).toEqual(['e', 'd']);
        expect((await ledger.receipts({ since: 10 * H, status: 'settled', limit: 1 })).map((r) => r.requestId)).toEqual(['c']);
        // An asset may have up to 36 decimals: sums far past 64 bits stay exact, and the writes succeed.
        const big = '123456789012345678901234567890';
        expect(await ledger.record(receiptRow('big1', { time: 13 * H, amount: big, route: 'GET /big' }))).toBe(true);
        expect(await ledger.record(receiptRow('big2', { time: 13 * H + 1, amount: big, route: 'GET /big' }))).toBe(true);
        expect((await ledger.hourlyTotals(13 * H)).map((t) => [t.count, t.atomic])).toEqual([[2, '246913578024691357802469135780']]);
      });
    });

    describe('hourlyTotals as rows change', () => {
      it('a row that changes status and time moves to its new group; a pruned row leaves its group', async () => {
        const H = 3_600_000;
        const now = Date.now();
        const hour = Math.floor(now / H) * H;
        await ledger.record(receiptRow('p', { time: hour - H + 5, status: 'pending', amount: '300' }));
        await ledger.record(receiptRow('huge', { time: hour - H + 4, status: 'pending', amount: '99999999999999999999999' }));
        await ledger.record(receiptRow('huge', { time: hour - H + 8, status: 'settle_failed', amount: '99999999999999999999999' }));
        await ledger.record(receiptRow('q', { time: hour - H + 6, status: 'refused', amount: '', transaction: '' }));
        const groups = async () =>
          Object.fromEntries((await ledger.hourlyTotals(hour - H)).map((t) => [`${(t.hourStartMs - hour) / H} ${t.status}`, [t.count, t.atomic]]));
        const failed = { '-1 settle_failed': [1, '99999999999999999999999'] };
        expect(await groups()).toEqual({ '-1 pending': [1, '300'], '-1 refused': [1, '0'], ...failed });
        await ledger.record(receiptRow('p', { time: hour + 7, status: 'settled', amount: '300' }));
        expect(await groups()).toEqual({ '0 settled': [1, '300'], '-1 refused': [1, '0'], ...failed });
        expect(await ledger.prune(hour, 10)).toBe(1);
        expect(await groups()).toEqual({ '0 settled': [1, '300'], ...failed });
      });
    });

    describe('pendingRows', () => {
      it("gives a network's pending rows written before a time, oldest first, each with its kept nonce's validBefore", async () => {
        const kept = nonceKey(11);
        expect(await ledger.reserveNonce(kept, 1_900_000_000)).toBe(true);
        await ledger.beginSettlement(kept, receiptRow('kept', { status: 'pending', time: 4_000, nonce: kept.nonce, transaction: '' }));
        await ledger.record(receiptRow('no-nonce', { status: 'pending', time: 3_000, nonce: '' }));
        await ledger.record(receiptRow('young', { status: 'pending', time: 9_000 }));
        await ledger.record(receiptRow('done', { status: 'settled', time: 2_000 }));
        await ledger.record(receiptRow('elsewhere', { status: 'pending', time: 1_000, network: 'eip155:84532' }));
        const rows = await ledger.pendingRows('eip155:8453', 5_000, 10);
        expect(rows.map((r) => [r.requestId, r.validBeforeSeconds])).toEqual([
          ['no-nonce', undefined],
          ['kept', 1_900_000_000],
        ]);
        expect(rows[1]).toMatchObject({ status: 'pending', payer: PAYER, nonce: kept.nonce, network: 'eip155:8453', amount: '10000' });
        expect((await ledger.pendingRows('eip155:8453', 5_000, 1)).map((r) => r.requestId)).toEqual(['no-nonce']);
        await ledger.record(receiptRow('kept', { status: 'settled', time: 6_000, nonce: kept.nonce }));
        expect((await ledger.pendingRows('eip155:8453', 10_000, 10)).map((r) => r.requestId)).toEqual(['no-nonce', 'young']);
      });
    });

    describe('leases', () => {
      it('one holder at a time; the holder renews; another takes it once it has run out', async () => {
        expect(await ledger.holdLease('reconcile', 'a', 60_000)).toBe(true);
        expect(await ledger.holdLease('reconcile', 'b', 60_000)).toBe(false);
        expect(await ledger.holdLease('reconcile', 'a', 1)).toBe(true);
        expect(await ledger.holdLease('other', 'b', 60_000)).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await ledger.holdLease('reconcile', 'b', 60_000)).toBe(true);
        expect(await ledger.holdLease('reconcile', 'a', 60_000)).toBe(false);
      });
    });

    describe('close', () => {
      it('a write asked for before close resolves', async () => {
        const pending = ledger.record(receiptRow('last'));
        await close();
        await expect(pending).resolves.toBe(true);
      });

      it('a write asked for after close is refused, not lost silently', async () => {
        await close();
        await expect(ledger.record(receiptRow('late'))).rejects.toThrow(/closed/);
      });
    });
  });
}
