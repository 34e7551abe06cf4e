// Percentiles and summaries of samples, the same definition everywhere:
// the nearest-rank percentile (the smallest sample with at least q of the
// samples at or below it).

export interface Quantiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Samples sorted ascending, as a Float64Array. */
export const sortedOf = (values: Iterable<number>): Float64Array => Float64Array.from(values).sort();

/** The q-quantile (0 < q ≤ 1) of samples already sorted ascending; NaN when there are none. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** p50, p90, p99 and max of samples already sorted ascending. */
export function quantilesOfSorted(sorted: ArrayLike<number>): Quantiles {
  return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/** p50, p90, p99 and max of samples in any order. */
export const quantiles = (values: Iterable<number>): Quantiles => quantilesOfSorted(sortedOf(values));

/** The median of the finite values (the mean of the middle two for an even count); NaN when there are none. */
export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** One sorted array of several lists of samples. */
export function merged(lists: number[][]): Float64Array {
  const out = new Float64Array(lists.reduce((s, l) => s + l.length, 0));
  let k = 0;
  for (const l of lists) for (const v of l) out[k++] = v;
  return out.sort();
}
