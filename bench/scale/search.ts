// The search for the highest sustained targeted rate: what "sustained"
// means, and which rate to try next from those measured so far. Pure, so
// that the search is tested apart from any server.
import type { TargetedResult } from './scenarios.js';

/** What the search reads of a measured rate. */
export type Measured = Pick<TargetedResult, 'rate' | 'latency' | 'lost' | 'failed' | 'achievedRate'>;

/** The p99 bound for "highest sustained rate", ms. */
export const P99_BOUND_MS = 50;
/** Targeted rates tried at most, msg/s (the `--rates` flag's bound). */
export const MOST_RATE = 50_000;

/** A rate was sustained: p99 under the bound, nothing lost or refused, and the generator on pace (≥ 95 % of the rate). */
export const sustained = (t: Measured): boolean => t.latency.p99 < P99_BOUND_MS && t.lost === 0 && t.failed === 0 && t.achievedRate >= 0.95 * t.rate;

/** The next rate of the search: between the highest sustained and the lowest not, or twice the highest when all held; undefined when close enough. */
export function nextRate(done: readonly Measured[]): number | undefined {
  const lo = Math.max(0, ...done.filter(sustained).map((t) => t.rate));
  const above = done.filter((t) => !sustained(t) && t.rate > lo).map((t) => t.rate);
  const hi = above.length > 0 ? Math.min(...above) : undefined;
  if (hi === undefined) return lo === 0 || lo >= MOST_RATE ? undefined : Math.min(MOST_RATE, lo * 2);
  const next = Math.round((lo + hi) / 2 / 100) * 100;
  return hi - lo <= Math.max(200, lo * 0.1) || next <= lo || next >= hi ? undefined : next;
}
