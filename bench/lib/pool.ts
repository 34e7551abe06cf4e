// Bounded concurrency: run many async calls, at most `limit` at once.

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
