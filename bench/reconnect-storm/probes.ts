// Responsiveness as the survivors' existing clients feel it: a few SDK
// clients connected to each survivor before the storm, each pinging every
// PROBE_INTERVAL_MS (one ping in flight at a time), round trips timestamped.
import WebSocket from 'ws';
import { SwitchboardClient } from '../../src/client/index.js';
import { sleep } from '../lib/wait.js';

const PROBE_INTERVAL_MS = 100;
const PING_TIMEOUT_MS = 10_000;

export interface PingSample {
  at: number;
  rttMs: number;
}

export class Probes {
  readonly samples: PingSample[] = [];
  private readonly clients: SwitchboardClient[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  /** `perNode` clients on each of `wsUrls` (ws://…/ws), connected before this resolves. */
  static async start(wsUrls: string[], perNode: number, timeoutMs: number): Promise<Probes> {
    const p = new Probes();
    for (const [n, url] of wsUrls.entries()) {
      for (let i = 0; i < perNode; i++) {
        const c = new SwitchboardClient({ url, WebSocket, params: { user: `probe-${n}-${i}` }, requestTimeout: PING_TIMEOUT_MS });
        c.on('error', () => undefined);
        p.clients.push(c);
      }
    }
    const connected = p.clients.map((c) => new Promise<void>((resolve) => c.once('connected', () => resolve())));
    for (const c of p.clients) c.connect();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(connected),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('probes did not connect')), timeoutMs))),
    ]);
    clearTimeout(timer);
    p.running = true;
    p.loops = p.clients.map((c) => p.loop(c));
    return p;
  }

  private async loop(c: SwitchboardClient): Promise<void> {
    while (this.running) {
      const at = Date.now();
      try {
        this.samples.push({ at, rttMs: await c.ping() });
      } catch {
        this.samples.push({ at, rttMs: Date.now() - at });
      }
      await sleep(PROBE_INTERVAL_MS);
    }
  }

  /** Round trips of pings sent in [from, to). */
  between(from: number, to: number): number[] {
    return this.samples.filter((s) => s.at >= from && s.at < to).map((s) => s.rttMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }
}
