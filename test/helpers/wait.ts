/** Polls `probe` until it holds; a probe that throws counts as "not yet". Returns the ms waited. */
export async function waitFor(probe: () => boolean | Promise<boolean>, timeoutMs = 10_000, intervalMs = 20): Promise<number> {
  const started = Date.now();
  while (!(await Promise.resolve().then(probe).catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return Date.now() - started;
}
