// Bounded concurrency: run many async calls, at most `limit` at once, or
// paced at a fixed rate.
import { sleep, waitUntil } from './wait.js';

/** Runs `fn` over `items`, at most `limit` at once; the answers in the items' order. A throw stops the pool and rejects. */
export async function pooled<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Calls `fn(n)` for n in [from, from + count), at most `limit` at once; a failure is counted, not thrown. */
export async function pooledCount(from: number, count: number, limit: number, fn: (n: number) => Promise<void>): Promise<{ failed: number; firstError?: string }> {
  let failed = 0;
  let firstError: string | undefined;
  const ns = Array.from({ length: count }, (_, i) => from + i);
  await pooled(ns, limit, (n) =>
    fn(n).catch((err: unknown) => {
      failed++;
      firstError ??= err instanceof Error ? err.message : String(err);
    }),
  );
  return { failed, firstError };
}

/**
 * Calls `fn(n)` for n < count at `rate` per second, each at its own moment
 * (not in bursts), at most `limit` under way at once (past that the caller
 * falls behind its rate, which the seconds show); waits up to `drainMs` for
 * the last ones. A failure is counted, not thrown.
 */
export async function paced(count: number, rate: number, limit: number, drainMs: number, fn: (n: number) => Promise<void>): Promise<{ seconds: number; failed: number; firstError?: string }> {
  const began = performance.now();
  let next = 0;
  let inFlight = 0;
  let failed = 0;
  let firstError: string | undefined;
  while (next < count) {
    const due = Math.min(count, Math.floor(((performance.now() - began) / 1000) * rate) + 1);
    while (next < due && inFlight < limit) {
      inFlight++;
      fn(next++).then(
        () => inFlight--,
        (err: unknown) => {
          inFlight--;
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        },
      );
    }
    await sleep(next < due ? 1 : Math.max(1, Math.min(5, 1000 / rate)));
  }
  const seconds = (performance.now() - began) / 1000;
  await waitUntil(() => inFlight === 0, drainMs);
  return { seconds, failed, firstError };
}
