/**
 * The pace of a drain (SIGTERM). A draining node tells its clients to
 * reconnect elsewhere (4100) a few at a time rather than all at once, so
 * that the other nodes take them in over a while instead of in one wave.
 * And it keeps answering HTTP for a while even when no client is left —
 * `/readyz` 503, upgrades refused with 503 — so that a load balancer that
 * checks `/readyz` sees the node leave its rotation instead of finding the
 * port closed.
 */
import { sleep } from '../shared/time.js';

/** Clients told to go per second: 10 000 clients take 10 s (at most half the drain timeout). */
export const DRAIN_CLOSES_PER_SECOND = 1000;
/**
 * How long a draining node keeps listening at least (at most half the drain
 * timeout): a load balancer that checks `/readyz` every second takes it out
 * after two failed checks (deploy/haproxy.cfg).
 */
export const READINESS_LINGER_MS = 3000;
/** Closes due are sent this often. */
const TICK_MS = 20;

export interface DrainPlan {
  /** Over how long the clients are told to go, the first at once. */
  spreadMs: number;
  /** How long after the start of the drain the listener stays open, at least. */
  lingerMs: number;
}

/** The pace of draining `clients` connections within `graceMs` (the drain timeout; 0 for "stop now"). */
export function drainPlan(clients: number, graceMs: number): DrainPlan {
  return {
    spreadMs: Math.min(graceMs / 2, (clients * 1000) / DRAIN_CLOSES_PER_SECOND),
    lingerMs: Math.min(graceMs / 2, READINESS_LINGER_MS),
  };
}

/** Calls `close` on each of `items` in order, evenly over `spreadMs` (the first at once); resolves after the last. */
export async function closeSpread<T>(items: readonly T[], spreadMs: number, close: (item: T) => void): Promise<void> {
  const start = Date.now();
  let done = 0;
  while (done < items.length) {
    // Due by the next tick: the share of the items that the time elapsed by then stands for.
    const share = spreadMs > 0 ? (Date.now() - start + TICK_MS) / spreadMs : 1;
    const due = Math.min(items.length, Math.ceil(share * items.length));
    for (; done < due; done++) close(items[done] as T);
    if (done < items.length) await sleep(TICK_MS);
  }
}
