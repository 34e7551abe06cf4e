/**
 * Rate limiting primitives. Time is passed in (milliseconds) so that the
 * logic is testable without clocks.
 */

/** A token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Counts events in fixed windows; `hit` says whether the count passed `limit` in the current window. */
export class WindowCounter {
  private count = 0;
  private windowStart: number;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    now: number,
  ) {
    this.windowStart = now;
  }

  /** Record one event; true when this window has now seen more than `limit`. */
  hit(now: number): boolean {
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.count = 0;
    }
    return ++this.count > this.limit;
  }
}

/**
 * New connections per IP per second, in one-second windows. The table is
 * bounded: past `maxIps` entries, stale windows are dropped first and, if
 * that is not enough, the table starts afresh (briefly lenient, never
 * unbounded).
 */
export class IpConnectionLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly maxIps = 100_000,
  ) {}

  /** Record a new connection from `ip`; false when it is over the limit. */
  allow(ip: string, now: number): boolean {
    if (this.perSecond <= 0) return true;
    let w = this.windows.get(ip);
    if (!w || now - w.start >= 1000) {
      if (!w && this.windows.size >= this.maxIps) this.prune(now);
      w = { start: now, count: 0 };
      this.windows.set(ip, w);
    }
    return ++w.count <= this.perSecond;
  }

  get size(): number {
    return this.windows.size;
  }

  private prune(now: number): void {
    for (const [ip, w] of this.windows) if (now - w.start >= 1000) this.windows.delete(ip);
    if (this.windows.size >= this.maxIps) this.windows.clear();
  }
}
