/**
 * Rate limiting primitives. Time is passed in (milliseconds) so that the
 * logic is testable without clocks.
 */
import type { Limits } from '../options.js';

/**
 * `takeToken` counts time from here: sums of intervals that are not whole
 * milliseconds (1000 / 3) keep their precision on small numbers, not on
 * milliseconds since 1970.
 */
const ORIGIN = Date.now();

/**
 * A token bucket kept as one number, the time at which it is full again
 * (the generic cell rate algorithm), so that one per connection costs a
 * field rather than an object: `rate` tokens per second, holding at most
 * `burst`; `FULL` (or any time past) is a full bucket. Returns the new
 * time after taking one token at `now`, or undefined when there is none.
 */
export function takeToken(fullAt: number, now: number, rate: number, burst: number): number | undefined {
  const interval = 1000 / rate;
  const t = now - ORIGIN;
  // A millionth of a token of slack for the float sums: a token due at `now` is there.
  if (fullAt - t > (burst - 1 + 1e-6) * interval) return undefined;
  return Math.max(fullAt, t) + interval;
}

/** The `fullAt` of a bucket that starts full. */
export const FULL = -Infinity;

/** A token bucket: `rate` tokens per second, holding at most `burst` (full at `now`). */
export class TokenBucket {
  private fullAt: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.fullAt = now - ORIGIN;
  }

  take(now: number): boolean {
    const next = takeToken(this.fullAt, now, this.rate, this.burst);
    if (next === undefined) return false;
    this.fullAt = next;
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
 * What a client frame spends: a well-formed `subscribe` or `unsubscribe`,
 * or any other `frame` (malformed ones included).
 */
export type FrameKind = 'frame' | 'subscribe' | 'unsubscribe';

/** How a frame was taken: within its budget, refused, or refused once too often (the connection must close). */
export type Admission = 'ok' | 'limited' | 'abuse';

/** The limits a `FrameBudget` follows. */
export type FrameLimits = Pick<Limits, 'maxMessagesPerSecond' | 'maxSubscriptions' | 'maxSubscribesPerSecond'>;

/**
 * One connection's budgets for incoming frames. Each limit counts what it
 * protects. Subscribing (broker interest, recovery reads) has its own
 * bucket, holding the connection's whole subscription limit so that a
 * (re)connecting client can subscribe to all it may hold at once, and
 * refilling slowly so that churn stays bounded. Each subscribe also pays
 * for one later unsubscribe, so a client can always leave what it holds;
 * an unsubscribe nothing paid for draws on the subscription bucket. Every
 * other frame draws on the frame rate, which holds one second's worth. A
 * client that keeps sending while refused is abusive: more refusals within
 * 10 s than its budget holds (at least 10). Subscribes refused for a while
 * and retried (the SDK does, with backoff) thus never close a client that
 * stays within its subscription limit.
 */
export class FrameBudget {
  /** The two buckets, as the times they are full again (see `takeToken`); both start full. */
  private framesFullAt = FULL;
  private subscribesFullAt = FULL;
  /** Unsubscribes paid for by the subscribes admitted before them, at most a burst's worth. */
  private paidUnsubscribes = 0;
  /** Refusals by budget, each made at its first: most connections never need one. */
  private refusedFrames: WindowCounter | undefined;
  private refusedSubscribes: WindowCounter | undefined;

  constructor(private readonly limits: FrameLimits) {}

  /** Subscribes a connection may send at once: its subscription limit, or one second's worth if more. */
  get subscribeBurst(): number {
    return Math.max(this.limits.maxSubscriptions, this.limits.maxSubscribesPerSecond);
  }

  /** Take one frame of `kind`. */
  take(kind: FrameKind, now: number): Admission {
    if (this.admits(kind, now)) return 'ok';
    const refused =
      kind === 'frame'
        ? (this.refusedFrames ??= new WindowCounter(Math.max(10, this.limits.maxMessagesPerSecond), 10_000, now))
        : (this.refusedSubscribes ??= new WindowCounter(Math.max(10, this.subscribeBurst), 10_000, now));
    return refused.hit(now) ? 'abuse' : 'limited';
  }

  private admits(kind: FrameKind, now: number): boolean {
    const { maxMessagesPerSecond, maxSubscribesPerSecond } = this.limits;
    if (kind === 'frame') {
      const next = takeToken(this.framesFullAt, now, maxMessagesPerSecond, maxMessagesPerSecond);
      if (next !== undefined) this.framesFullAt = next;
      return next !== undefined;
    }
    if (kind === 'unsubscribe' && this.paidUnsubscribes > 0) {
      this.paidUnsubscribes--;
      return true;
    }
    const next = takeToken(this.subscribesFullAt, now, maxSubscribesPerSecond, this.subscribeBurst);
    if (next === undefined) return false;
    this.subscribesFullAt = next;
    if (kind === 'subscribe') this.paidUnsubscribes = Math.min(this.paidUnsubscribes + 1, this.subscribeBurst);
    return true;
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
