/**
 * The payment lifecycle behind fake ports that record their calls: what is written to the
 * ledger, in which order, on every path. (The real adapters are proven on a real chain in e2e.)
 */
import { describe, expect, it } from 'vitest';
import { Checkout } from '../../src/payments/checkout.js';
import { WorkInFlight } from '../../src/payments/work-in-flight.js';
import type { PaymentOption } from '../../src/config/types.js';
import type { Ledger, NonceKey, ProofChecker, Receipt, SettleResult, Settler, Verifier, VerifyResult } from '../../src/payments/ports.js';
import type { DecodedPayment } from '../../src/protocol/types.js';
import { fixedClock } from '../helpers/clock.js';
import { makeOption, makePayment, makeRoute } from '../helpers/options.js';

const NOW = 1_800_000_000n;
const option = makeOption();
const route = makeRoute([option]);
const PAYER = '0x2222222222222222222222222222222222222222';

function payment(validBefore = NOW + 300n, nonce: `0x${string}` = `0x${'ab'.repeat(32)}`): DecodedPayment {
  return makePayment({ x402Version: 1, option, authorization: { from: PAYER, validBefore, nonce } });
}

const unused = async (): Promise<never> => {
  throw new Error('the checkout does not use the settlement log');
};

class RecordingLedger implements Ledger {
  readonly calls: string[] = [];
  readonly rows: Receipt[] = [];
  reserved = new Set<string>();
  failRecordOf: string | undefined;
  /** A reconciler finished the rows first: the store leaves later writes of them out. */
  reconciledFirst = false;
  async reserveNonce(key: NonceKey): Promise<boolean> {
    this.calls.push('reserve');
    if (this.reserved.has(key.nonce)) return false;
    this.reserved.add(key.nonce);
    return true;
  }
  async releaseNonce(key: NonceKey): Promise<void> {
    this.calls.push('release');
    this.reserved.delete(key.nonce);
  }
  async beginSettlement(_key: NonceKey, pending: Receipt): Promise<void> {
    this.calls.push('keep+record:pending');
    if (this.failRecordOf === 'pending') throw new Error('disk full');
    this.rows.push(pending);
  }
  async claimProof(): Promise<boolean> {
    return true;
  }
  /** Refusals by `chainId:payer`, with their expiry. */
  readonly penalties = new Map<string, number>();
  async penalisePayer(chainId: number, payer: string, untilSeconds: number): Promise<void> {
    this.calls.push(`penalise:${untilSeconds}`);
    this.penalties.set(`${chainId}:${payer.toLowerCase()}`, untilSeconds);
  }
  async payerPenalty(chainId: number, payer: string): Promise<number | undefined> {
    const until = this.penalties.get(`${chainId}:${payer.toLowerCase()}`);
    return until !== undefined && until > NOW ? until : undefined;
  }
  async record(r: Receipt): Promise<boolean> {
    this.calls.push(`record:${r.status}`);
    if (r.status === this.failRecordOf) throw new Error('disk full');
    if (this.reconciledFirst) return false;
    this.rows.push(r);
    return true;
  }
  async receipts(): Promise<Receipt[]> {
    return this.rows;
  }
  async ping(): Promise<void> {}
  // No re-delivery here (paid-path.test.ts runs it on a real store): nothing is kept for it.
  async deliveryOf(): Promise<undefined> {
    return undefined;
  }
  async claimRedelivery(): Promise<boolean> {
    return false;
  }
  async answerEnded(): Promise<void> {}
  async close(): Promise<void> {}
  // The settlement log belongs to the local settler, which these tests replace with a fake.
  takeNonce = unused;
  raiseNonceFloor = unused;
  returnNonce = unused;
  logSettlement = unused;
  logReplacement = unused;
  voidSettlement = unused;
  closeSettlement = unused;
  prune = unused;
  openSettlements = unused;
  holdLease = unused;
  pendingReceipts = unused;
  pendingRows = unused;
  hourlyTotals = unused;
  // The settlement queue: no route of these tests settles deferred.
  enqueueDeferred = unused;
  queuedDeferred = unused;
  logBatch = unused;
  batchItems = unused;
  finishDeferred = unused;
  requeueBatch = unused;
  deferredStatus = unused;
  lastDeferredFailure = unused;
  queueStats = unused;
}

function setup(settle: SettleResult, verdict: VerifyResult = { valid: true, payer: PAYER }, settleWith?: Settler['settle'], proof?: ProofChecker) {
  const ledger = new RecordingLedger();
  const verifier: Verifier = {
    verify: async () => {
      ledger.calls.push('verify');
      return verdict;
    },
  };
  const settler: Settler = {
    settle:
      settleWith ??
      (async () => {
        ledger.calls.push('settle');
        return settle;
      }),
  };
  const work = new WorkInFlight();
  const checkout = new Checkout({
    verifiers: new Map([['base', verifier]]),
    settlers: new Map([['base', settler]]),
    proofs: new Map(proof ? [['base', proof]] : []),
    ledger,
    clock: fixedClock(NOW),
    work,
  });
  const request = { requestId: 'r1', route, method: 'GET', path: '/v1/weather', resourceUrl: 'http://gw/v1/weather' };
  return { ledger, checkout, request, work };
}

const TX = `0x${'cd'.repeat(32)}` as const;
const REVERTED: SettleResult = { success: false, reason: 'invalid_exact_evm_transaction_failed', transaction: TX, maybeOnChain: false, reverted: true };

/** `option` on a network the gateway settles itself, refusing a reverted payer for `revertPenaltySeconds`. */
function settledLocally(revertPenaltySeconds: number): PaymentOption {
  const settle = { mode: 'local', privateKey: `0x${'11'.repeat(32)}`, receiptTimeoutMs: 30_000, maxGas: 150_000, revertPenaltySeconds, replaceAfterSeconds: 30, minBalanceWei: undefined } as const;
  return makeOption({ asset: { ...option.asset, network: { ...option.asset.network, settle } } });
}
const PROOF = { txHash: TX, signature: `0x${'ee'.repeat(65)}`, resourceUrl: 'http://gw/v1/weather' } as const;

describe('Checkout', () => {
  it('verifies, reserves, then keeps the nonce and writes a pending row before the settlement is sent', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    const auth = await checkout.authorize(payment(), [option], request);
    expect(auth.kind).toBe('authorized');
    if (auth.kind !== 'authorized') throw new Error('not authorized');
    expect(await checkout.settle(auth.authorized)).toEqual({ kind: 'settled', transaction: TX, payer: PAYER, reconciledFirst: false });
    expect(ledger.calls).toEqual(['verify', 'reserve', 'keep+record:pending', 'settle', 'record:settled']);
  });

  it('still reports a settlement whose final ledger write failed: the money moved and the pending row remains', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    ledger.failRecordOf = 'settled';
    const auth = await checkout.authorize(payment(), [option], request);
    if (auth.kind !== 'authorized') throw new Error('not authorized');
    expect((await checkout.settle(auth.authorized)).kind).toBe('settled');
    expect(ledger.rows.map((r) => r.status)).toEqual(['pending']);
  });

  it('says when a reconciler recorded the settlement first (then it, not this request, counts it)', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    const auth = await checkout.authorize(payment(), [option], request);
    if (auth.kind !== 'authorized') throw new Error('not authorized');
    ledger.reconciledFirst = true;
    expect(await checkout.settle(auth.authorized)).toEqual({ kind: 'settled', transaction: TX, payer: PAYER, reconciledFirst: true });
  });

  it('serves a proof it has claimed even if the receipt row cannot be written (the hash is spent either way)', async () => {
    const proof: ProofChecker = { check: async () => ({ ok: true, payer: PAYER, amount: option.amount }) };
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER }, undefined, undefined, proof);
    ledger.failRecordOf = 'proof_accepted';
    expect(await checkout.acceptProof(PROOF, [option], request)).toEqual({ kind: 'accepted', payer: PAYER, option });
    expect(ledger.calls).toEqual(['record:proof_accepted']);
  });

  it('does not spend a hash whose proof was signed by someone else, and names the signer in the refused row', async () => {
    const STRANGER = '0x3333333333333333333333333333333333333333';
    const seen: unknown[] = [];
    const proof: ProofChecker = {
      check: async (p) => {
        seen.push(p);
        return { ok: false, reason: 'proof_signature_mismatch', signer: STRANGER };
      },
    };
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER }, undefined, undefined, proof);
    ledger.claimProof = async () => {
      ledger.calls.push('claim');
      return true;
    };
    expect(await checkout.acceptProof(PROOF, [option], request)).toEqual({ kind: 'refused', reason: 'proof_signature_mismatch' });
    expect(seen).toEqual([PROOF]);
    expect(ledger.calls).toEqual(['record:proof_refused']);
    expect(ledger.rows).toMatchObject([{ status: 'proof_refused', reason: 'proof_signature_mismatch', payer: STRANGER, transaction: TX }]);
  });

  it('refuses to settle at all if the pending row cannot be written', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    ledger.failRecordOf = 'pending';
    const auth = await checkout.authorize(payment(), [option], request);
    if (auth.kind !== 'authorized') throw new Error('not authorized');
    await expect(checkout.settle(auth.authorized)).rejects.toThrow('disk full');
    expect(ledger.calls).not.toContain('settle');
  });

  it('releases the nonce after a settlement that certainly never landed, keeps it when it may have', async () => {
    // Refused by the simulation, before anything was sent. (A mined revert used to be released
    // here too; it now keeps the nonce: see the next test.)
    const failed = setup({ success: false, reason: 'invalid_exact_evm_insufficient_balance', maybeOnChain: false });
    const a = await failed.checkout.authorize(payment(), [option], failed.request);
    if (a.kind !== 'authorized') throw new Error('not authorized');
    expect(await failed.checkout.settle(a.authorized)).toMatchObject({ kind: 'failed', pending: false });
    expect(failed.ledger.calls.slice(-2)).toEqual(['release', 'record:settle_failed']);

    const pending = setup({ success: false, reason: 'settlement_pending', transaction: TX, maybeOnChain: true });
    const b = await pending.checkout.authorize(payment(), [option], pending.request);
    if (b.kind !== 'authorized') throw new Error('not authorized');
    expect(await pending.checkout.settle(b.authorized)).toMatchObject({ kind: 'failed', pending: true });
    expect(pending.ledger.calls).not.toContain('release');
    expect(pending.ledger.rows.at(-1)).toMatchObject({ status: 'pending', reason: 'settlement_pending', transaction: TX });
  });

  it('after a mined revert keeps the nonce spent and refuses the payer for settle.revertPenaltySeconds, before verifying', async () => {
    const local = settledLocally(3_600);
    const { ledger, checkout, request } = setup(REVERTED);
    const a = await checkout.authorize(payment(), [local], request);
    if (a.kind !== 'authorized') throw new Error('not authorized');
    expect(await checkout.settle(a.authorized)).toEqual({ kind: 'failed', reason: 'invalid_exact_evm_transaction_failed', transaction: TX, pending: false });
    expect(ledger.calls).toEqual(['verify', 'reserve', 'keep+record:pending', 'settle', `penalise:${Number(NOW) + 3_600}`, 'record:settle_failed']);
    expect(ledger.rows.at(-1)).toMatchObject({ status: 'settle_failed', reason: 'invalid_exact_evm_transaction_failed', transaction: TX });

    // The same authorization, and a fresh one from the same payer: refused without verifying,
    // and without a row (nothing proves the payer sent them).
    ledger.calls.length = 0;
    expect(await checkout.authorize(payment(), [local], request)).toMatchObject({ kind: 'refused', reason: 'payer_suspended' });
    expect(await checkout.authorize(payment(NOW + 300n, `0x${'cd'.repeat(32)}`), [local], request)).toMatchObject({ kind: 'refused', reason: 'payer_suspended' });
    expect(ledger.calls).toEqual([]);
  });

  it('after a mined revert under revertPenaltySeconds: 0 keeps the nonce spent and suspends no one', async () => {
    const local = settledLocally(0);
    const { ledger, checkout, request } = setup(REVERTED);
    const a = await checkout.authorize(payment(), [local], request);
    if (a.kind !== 'authorized') throw new Error('not authorized');
    await checkout.settle(a.authorized);
    expect(ledger.calls).toEqual(['verify', 'reserve', 'keep+record:pending', 'settle', 'record:settle_failed']);
    expect(await checkout.authorize(payment(), [local], request)).toEqual({ kind: 'refused', reason: 'invalid_exact_evm_nonce_already_used' });
    expect((await checkout.authorize(payment(NOW + 300n, `0x${'cd'.repeat(32)}`), [local], request)).kind).toBe('authorized');
  });

  it('a facilitator\'s reverted settlement suspends no one (its gas is not ours)', async () => {
    const { ledger, checkout, request } = setup(REVERTED);
    const a = await checkout.authorize(payment(), [option], request);
    if (a.kind !== 'authorized') throw new Error('not authorized');
    await checkout.settle(a.authorized);
    expect(ledger.calls).not.toContain('release');
    expect(ledger.penalties.size).toBe(0);
  });

  it('writes a refusal\'s row, and names its payer proven, only when the refusal came after the signature checked out', async () => {
    const unproven = setup({ success: true, transaction: TX, payer: PAYER }, { valid: false, reason: 'invalid_exact_evm_signature', payer: PAYER });
    expect(await unproven.checkout.authorize(payment(), [option], unproven.request)).toEqual({ kind: 'refused', reason: 'invalid_exact_evm_signature' });
    expect(unproven.ledger.rows).toEqual([]);
    const proven = setup({ success: true, transaction: TX, payer: PAYER }, { valid: false, reason: 'invalid_exact_evm_insufficient_balance', payer: PAYER });
    expect(await proven.checkout.authorize(payment(), [option], proven.request)).toEqual({
      kind: 'refused',
      reason: 'invalid_exact_evm_insufficient_balance',
      provenPayer: PAYER,
    });
    expect(proven.ledger.rows).toMatchObject([{ status: 'refused', reason: 'invalid_exact_evm_insufficient_balance', payer: PAYER }]);
    // A used nonce may be the verifier cache's answer before any signature check: no proof of the payer.
    const used = setup({ success: true, transaction: TX, payer: PAYER }, { valid: false, reason: 'invalid_exact_evm_nonce_already_used', payer: PAYER });
    expect(await used.checkout.authorize(payment(), [option], used.request)).toEqual({ kind: 'refused', reason: 'invalid_exact_evm_nonce_already_used' });
    expect(used.ledger.rows).toEqual([]);
  });

  it('refuses a second reservation of one nonce, and records the refusal', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    expect((await checkout.authorize(payment(), [option], request)).kind).toBe('authorized');
    expect(await checkout.authorize(payment(), [option], request)).toEqual({ kind: 'refused', reason: 'invalid_exact_evm_nonce_already_used' });
    expect(ledger.rows.at(-1)).toMatchObject({ status: 'refused', reason: 'invalid_exact_evm_nonce_already_used', payer: PAYER });
  });

  it('refuses, before verifying, an authorization that would expire before an after-settlement', async () => {
    const { ledger, checkout, request } = setup({ success: true, transaction: TX, payer: PAYER });
    // The route's upstream times out after 30 s; 30 + the 15 s margin is needed.
    expect(await checkout.authorize(payment(NOW + 40n), [option], request)).toEqual({
      kind: 'refused',
      reason: 'invalid_exact_evm_payload_authorization_valid_before',
    });
    expect(ledger.calls).toEqual([]);
    expect((await checkout.authorize(payment(NOW + 45n), [option], request)).kind).toBe('authorized');
  });

  it('counts settlements and releases in flight, for the drain', async () => {
    let finish: (r: SettleResult) => void = () => {};
    const settled: SettleResult = { success: true, transaction: TX, payer: PAYER };
    const { checkout: slow, request, work } = setup(settled, undefined, () => new Promise<SettleResult>((r) => (finish = r)));
    const a = await slow.authorize(payment(), [option], request);
    if (a.kind !== 'authorized') throw new Error('not authorized');
    const settling = slow.settle(a.authorized);
    await new Promise((r) => setTimeout(r, 10));
    expect(work.count).toBe(1);
    finish(settled);
    await settling;
    expect(work.count).toBe(0);
  });
});
