/** Exponential backoff from 0.5 s, ±50 % jitter, at most 30 s. */
export function backoff(failures: number): number {
  const base = 500 * 2 ** Math.min(failures, 10);
  return Math.min(30_000, Math.round(base * (0.5 + Math.random())));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
