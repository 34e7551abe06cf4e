/**
 * The project's one backoff (client reconnects, server publish retries,
 * server SDK retries, broker reconnects), browser-safe: full-jitter
 * exponential backoff (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"). The delay before retry number `attempt` (0-based) is
 * uniform in [0, min(max, min * 2^attempt)). Full jitter spreads a crowd of
 * clients that lost the same node over the whole window instead of having
 * them return in waves.
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
