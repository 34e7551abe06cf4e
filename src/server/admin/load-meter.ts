/**
 * Live load figures of one node for the cluster heartbeat and the admin
 * dashboard: messages per second in and out and delivery latency p50/p99.
 * "In" is everything that enters the node: client frames of every type and
 * publications accepted through the server API (a node fed only by a
 * backend's API calls is not idle).
 *
 * prom-client only keeps totals since the start, so the meter samples the
 * counters of `Metrics` (read only) once a second and reports the change
 * over a short window. Rates use the last second; the latency quantiles use
 * the last few seconds, because one second of a quiet node holds too few
 * deliveries for a p99.
 */
import type { Metrics } from '../metrics.js';

export interface LoadFigures {
  /** Client frames received (all types) plus publications accepted through the server API, per second. */
  messagesInPerSec: number;
  /** Message frames written to client sockets per second. */
  messagesOutPerSec: number;
  /** Delivery latency quantiles over the last `LATENCY_WINDOW` samples (ms, a histogram bucket's upper bound); absent with no deliveries. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
}

interface Sample {
  at: number;
  messagesIn: number;
  delivered: number;
  /** Cumulative counts per bucket upper bound (seconds), `+Inf` last. */
  buckets: Array<{ le: number; count: number }>;
}

const SAMPLE_MS = 1000;
/** Samples kept: the latency window is this many seconds, less one. */
const LATENCY_WINDOW = 6;

export class LoadMeter {
  private samples: Sample[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly metrics: Metrics) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The figures of the latest window; zeros until two samples exist. */
  figures(): LoadFigures {
    const last = this.samples[this.samples.length - 1];
    const prev = this.samples[this.samples.length - 2];
    const first = this.samples[0];
    if (!last || !prev || !first) return { messagesInPerSec: 0, messagesOutPerSec: 0 };
    const secs = Math.max(0.001, (last.at - prev.at) / 1000);
    const figures: LoadFigures = {
      messagesInPerSec: round((last.messagesIn - prev.messagesIn) / secs),
      messagesOutPerSec: round((last.delivered - prev.delivered) / secs),
    };
    const p50 = quantile(first, last, 0.5);
    const p99 = quantile(first, last, 0.99);
    if (p50 !== undefined) figures.latencyP50Ms = p50;
    if (p99 !== undefined) figures.latencyP99Ms = p99;
    return figures;
  }

  private async sample(): Promise<void> {
    try {
      const [frames, published, delivered, latency] = await Promise.all([
        this.metrics.messagesIn.get(),
        this.metrics.published.get(),
        this.metrics.delivered.get(),
        this.metrics.latency.get(),
      ]);
      const buckets = latency.values
        .filter((v) => v.metricName?.endsWith('_bucket') && v.labels.le !== undefined)
        .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), count: v.value }))
        .sort((a, b) => a.le - b.le);
      this.samples.push({
        at: Date.now(),
        // A client's publish is already one of its frames: only the API's publications add to them.
        messagesIn: sum(frames.values) + sum(published.values.filter((v) => v.labels.source === 'api')),
        delivered: sum(delivered.values),
        buckets,
      });
      if (this.samples.length > LATENCY_WINDOW) this.samples.shift();
    } catch {
      // A failed read leaves a gap; the next second's sample covers it.
    }
  }
}

/** The upper bound (ms) of the bucket holding quantile `q` of the deliveries between two samples. */
function quantile(from: Sample, to: Sample, q: number): number | undefined {
  const before = new Map(from.buckets.map((b) => [b.le, b.count]));
  const deltas = to.buckets.map((b) => ({ le: b.le, count: b.count - (before.get(b.le) ?? 0) }));
  const total = deltas[deltas.length - 1]?.count ?? 0;
  if (total <= 0) return undefined;
  const wanted = q * total;
  for (const d of deltas) {
    // The last finite bound stands for `+Inf`: the page shows "≥ 2500 ms" rather than infinity.
    if (d.count >= wanted) return round((Number.isFinite(d.le) ? d.le : lastFinite(deltas)) * 1000);
  }
  return undefined;
}

function lastFinite(buckets: Array<{ le: number }>): number {
  return [...buckets].reverse().find((b) => Number.isFinite(b.le))?.le ?? 0;
}

function sum(values: Array<{ value: number }>): number {
  return values.reduce((n, v) => n + v.value, 0);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
