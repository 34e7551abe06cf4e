// The survivors' /metrics, read every SCRAPE_INTERVAL_MS during a run:
// prom-client's default metrics include the event-loop delay histogram
// (monitorEventLoopDelay), which it resets at every scrape, so the max of
// `nodejs_eventloop_lag_max_seconds` over the scrapes in a window is the
// worst delay of that window. A scrape that fails (node too busy to answer
// in time) loses nothing: the next one covers the time since the last.
import { metric } from '../lib/nodes.js';
import { sleep } from '../lib/wait.js';

const SCRAPE_INTERVAL_MS = 500;
const SCRAPE_TIMEOUT_MS = 5_000;

export interface LagSample {
  at: number;
  node: string;
  maxS: number;
  p99S: number;
}

export class Scraper {
  readonly samples: LagSample[] = [];
  failures = 0;
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(nodes: Array<{ id: string; port: number }>) {
    this.loops = nodes.map((n) => this.loop(n));
  }

  static async text(port: number): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    return res.text();
  }

  private async loop(n: { id: string; port: number }): Promise<void> {
    while (this.running) {
      const started = Date.now();
      try {
        const text = await Scraper.text(n.port);
        this.samples.push({
          at: Date.now(),
          node: n.id,
          maxS: metric(text, 'switchboard_nodejs_eventloop_lag_max_seconds'),
          p99S: metric(text, 'switchboard_nodejs_eventloop_lag_p99_seconds'),
        });
      } catch {
        this.failures++;
      }
      await sleep(SCRAPE_INTERVAL_MS - (Date.now() - started));
    }
  }

  /**
   * Worst delay (max and p99 of each scrape's histogram), ms, seen by the
   * scrapes taken in (from, to]: each covers the time since the previous.
   */
  worst(from: number, to: number): { maxMs: number; p99Ms: number; scrapes: number } {
    const inWindow = this.samples.filter((s) => s.at > from && s.at <= to);
    return {
      maxMs: Math.max(0, ...inWindow.map((s) => s.maxS * 1000)),
      p99Ms: Math.max(0, ...inWindow.map((s) => s.p99S * 1000)),
      scrapes: inWindow.length,
    };
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}
