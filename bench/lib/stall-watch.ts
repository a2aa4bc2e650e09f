/**
 * Detects the one way a paid window can hang on anvil: a nonce gap. Under concurrent submissions
 * from one account in automine mode, anvil 1.7 now and then accepts a transaction (returns its
 * hash) and never mines it nor keeps it in its pool (compare foundry-rs/foundry#10122). Every later
 * transaction of that account then waits in the pool's queue forever, and every settlement waits
 * for its receipt until it times out. Neither the gateway's settler nor the official facilitator
 * re-sends a dropped transaction, so the window would stall until its payments expire.
 *
 * The watch reads the settling account's nonces and the pool every few seconds; a gap that
 * persists across two reads aborts the window, and the harness re-runs it on a fresh chain and
 * reports the incident.
 */

/** How often the chain is read while a window runs. */
export const STALL_CHECK_INTERVAL_MS = 4_000;

export interface StallWatch {
  readonly signal: AbortSignal;
  /** Why the window was aborted, once it was. */
  readonly reason: () => string | undefined;
  stop(): void;
}

async function rpc(url: string, method: string, params: unknown[]): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body: unknown = await res.json();
  return typeof body === 'object' && body !== null && 'result' in body ? body.result : undefined;
}

/** Mined nonce, and the number of transactions anvil holds that cannot be mined yet. */
async function gapState(rpcUrl: string, account: string): Promise<{ latest: number; pending: number; queued: number }> {
  const [latest, pending, pool] = await Promise.all([
    rpc(rpcUrl, 'eth_getTransactionCount', [account, 'latest']),
    rpc(rpcUrl, 'eth_getTransactionCount', [account, 'pending']),
    rpc(rpcUrl, 'txpool_status', []),
  ]);
  const queued = typeof pool === 'object' && pool !== null && 'queued' in pool ? Number(pool.queued) : 0;
  return { latest: Number(latest), pending: Number(pending), queued };
}

export function watchForNonceGap(rpcUrl: string, account: string): StallWatch {
  const controller = new AbortController();
  let reason: string | undefined;
  let suspectAt: number | undefined;
  const timer = setInterval(() => {
    gapState(rpcUrl, account).then(
      (s) => {
        // Queued transactions while nothing is pending: the next nonce is missing from the pool.
        const gap = s.queued > 0 && s.pending === s.latest;
        if (!gap) {
          suspectAt = undefined;
          return;
        }
        if (suspectAt === undefined || suspectAt !== s.latest) {
          suspectAt = s.latest;
          return;
        }
        reason = `nonce gap: anvil mined up to nonce ${s.latest - 1}, never mined nonce ${s.latest} and holds ${s.queued} later transactions`;
        clearInterval(timer);
        controller.abort();
      },
      () => {},
    );
  }, STALL_CHECK_INTERVAL_MS);
  return {
    signal: controller.signal,
    reason: () => reason,
    stop: () => clearInterval(timer),
  };
}
