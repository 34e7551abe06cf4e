/**
 * When the primary starts a worker again after it died: after a short
 * delay, doubling while it keeps dying soon after its start,
 * and not at all after too many such deaths in a row (a worker that cannot
 * stay up would otherwise spin forever). A worker that stayed up a while
 * starts the count afresh.
 */

export interface RestartLimits {
  /** The first delay, ms; it doubles with each quick death in a row. Default 250. */
  baseDelayMs: number;
  /** The longest delay, ms. Default 10000. */
  maxDelayMs: number;
  /** A death within this many ms of the start is quick. Default 30000. */
  quickMs: number;
  /** Quick deaths in a row after which the worker is not started again. Default 5. */
  maxQuickDeaths: number;
}

export const DEFAULT_RESTART_LIMITS: Readonly<RestartLimits> = {
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  quickMs: 30_000,
  maxQuickDeaths: 5,
};

export class RestartPolicy {
  private quickDeaths = 0;

  constructor(private readonly limits: RestartLimits = DEFAULT_RESTART_LIMITS) {}

  /** A worker that had run for `ranMs` died: the delay before starting it again, or null to give up. */
  next(ranMs: number): number | null {
    if (ranMs >= this.limits.quickMs) this.quickDeaths = 0;
    else this.quickDeaths++;
    if (this.quickDeaths > this.limits.maxQuickDeaths) return null;
    return Math.min(this.limits.maxDelayMs, this.limits.baseDelayMs * 2 ** Math.max(0, this.quickDeaths - 1));
  }
}
