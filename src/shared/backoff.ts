/**
 * The project's one backoff (client reconnects, server publish retries,
 * server SDK retries, broker reconnects), browser-safe: full-jitter
 * exponential backoff (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"). The delay before retry number `attempt` (0-based) is
 * uniform in [0, min(max, min * 2^attempt)). Full jitter spreads a crowd of
 * clients that lost the same node over the whole window instead of having
 * them return in waves. A broker's own connections use `reconnectDelay`: the
 * same window, never a zero pause (see there).
 */

/** A source of uniform numbers in [0, 1); `Math.random` unless a test injects one. */
export type RandomSource = () => number;

/** Exponents beyond this already exceed any sane `max`; capping avoids `Infinity` arithmetic. */
const MAX_EXPONENT = 30;

/** The window's upper bound for `attempt`: `min(max, min * 2^attempt)`. */
export function backoffCeiling(attempt: number, min: number, max: number): number {
  const exp = Math.min(Math.max(0, Math.floor(attempt)), MAX_EXPONENT);
  return Math.min(max, min * 2 ** exp);
}

/** The delay in ms before retry `attempt`: an integer in [0, backoffCeiling). */
export function backoffDelay(attempt: number, min: number, max: number, random: RandomSource = Math.random): number {
  const r = Math.min(Math.max(random(), 0), 1);
  const ceiling = backoffCeiling(attempt, min, max);
  // `r` may be exactly 1 from a test source; keep the delay inside the window.
  return Math.min(Math.floor(r * ceiling), Math.max(0, ceiling - 1));
}

/** The first reconnection window: attempt 1 waits 25–50 ms, attempt 2 51–100 ms, and so on. */
const RECONNECT_MIN_MS = 50;

/**
 * Pause before connection attempt `attempt` (1, 2, …) of a broker's
 * connection, in ms: the same doubling window as `backoffDelay` (from 50 ms,
 * capped at `maxMs`), but "equal jitter" (the same AWS article): the pause
 * is in (window / 2, window], never 0. A lost backend refuses at once, so a
 * zero pause would spin on reconnecting; the fixed half also keeps a node
 * from hammering a backend that stays down at the cap, while the random
 * half still spreads the nodes that lost it together.
 */
export function reconnectDelay(attempt: number, maxMs: number, random: RandomSource = Math.random): number {
  const window = backoffCeiling(attempt - 1, RECONNECT_MIN_MS, maxMs);
  return window - backoffDelay(attempt - 1, RECONNECT_MIN_MS / 2, maxMs / 2, random);
}
