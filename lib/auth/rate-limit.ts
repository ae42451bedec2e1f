/**
 * A fixed-window counter of failures per key, in process memory. It guards
 * sign-in on one control-plane process; several replicas each keep their own.
 */
export class FailureLimiter {
  private readonly hits = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the key may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const e = this.hits.get(key);
    if (!e) return 0;
    const t = this.now();
    if (t >= e.resetAt) {
      this.hits.delete(key);
      return 0;
    }
    return e.count >= this.max ? Math.ceil((e.resetAt - t) / 1000) : 0;
  }

  fail(key: string): void {
    const t = this.now();
    const e = this.hits.get(key);
    if (!e || t >= e.resetAt) this.hits.set(key, { count: 1, resetAt: t + this.windowMs });
    else e.count++;
    if (this.hits.size > 50_000) this.sweep(t);
  }

  reset(key: string): void {
    this.hits.delete(key);
  }

  private sweep(t: number) {
    for (const [k, e] of this.hits) if (t >= e.resetAt) this.hits.delete(k);
  }
}
