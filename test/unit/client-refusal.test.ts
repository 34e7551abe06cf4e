/**
 * The SDK under a reconnect storm: an upgrade refused before the WebSocket
 * opens (HTTP 503/429; the `ws` package reports it as an error, browsers
 * only as a close 1006) is retried after a full-jitter backoff whose window
 * doubles with every failure, never in a tight loop; the window goes back
 * to its start only after a `welcome`, not after a socket that opened and
 * was closed before it; and a crowd refused at once retries spread out.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient, type ClientOptions } from '../../src/client/index.js';
import { FakeServer } from './client-fake-server.js';

const servers: FakeServer[] = [];
const clients: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function client(url: string, opts: Partial<ClientOptions>): SwitchboardClient {
  const c = new SwitchboardClient({ url, WebSocket, params: { user: 'alice' }, ...opts });
  c.on('error', () => undefined); // refusals are reported as errors; not under test here
  clients.push(c);
  return c;
}

/** Gaps between consecutive times. */
const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);

describe('client backoff through refused upgrades', () => {
  it('waits a doubling window between 503 refusals (random 0.5: 20, 40, 80 … 640 ms)', async () => {
    const times: number[] = [];
    const s = await FakeServer.start({
      reject: () => {
        times.push(Date.now());
        return times.length <= 6 ? 503 : 0;
      },
    });
    servers.push(s);
    const c = client(s.url, { minReconnectDelay: 40, maxReconnectDelay: 10_000, random: () => 0.5 });
    c.connect();
    (await s.connection(0)).welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    const g = gaps(times);
    expect(g).toHaveLength(6);
    g.forEach((gap, k) => {
      const delay = 0.5 * 40 * 2 ** k;
      // Timers never fire early (1 ms of rounding aside); late is allowed on a loaded machine.
      expect(gap, `gap ${k}`).toBeGreaterThanOrEqual(delay - 2);
      expect(gap, `gap ${k}`).toBeLessThan(delay + 400);
    });
  });

  it('keeps backing off through sockets that open but close before welcome, and starts over only after a welcome', async () => {
    const times: number[] = [];
    let attempt = 0;
    const s = await FakeServer.start({
      reject: () => {
        times.push(Date.now());
        attempt++;
        return attempt <= 2 ? 503 : 0;
      },
      // Attempts 3 and 4 upgrade but are closed before any welcome (a node that gives up on the session).
      onConnection: (conn) => {
        if (attempt <= 4) conn.ws.close(4100, 'draining');
      },
    });
    servers.push(s);
    const c = client(s.url, { minReconnectDelay: 40, maxReconnectDelay: 10_000, random: () => 0.5 });
    c.connect();
    const conn = await s.connection(2, 5000); // attempts 3 and 4 were connections 0 and 1
    conn.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    expect(gaps(times).map((gap, k) => gap >= 0.5 * 40 * 2 ** k - 2)).toEqual([true, true, true, true]);
    expect(gaps(times)[3]).toBeGreaterThanOrEqual(158);

    // A welcome resets the window: the next drop is retried after 0.5 * 40 ms again.
    const dropped = Date.now();
    conn.kill();
    await vi.waitUntil(() => times.length === 6, { timeout: 3000, interval: 5 });
    expect(times[5]! - dropped).toBeLessThan(150);
  });

  it('spreads a crowd refused at the same moment over the whole window (full jitter)', async () => {
    const firstRetry = new Map<string, number>();
    const firstTry = new Map<string, number>();
    const s = await FakeServer.start({ reject: () => 503 });
    servers.push(s);
    // Record per client the time of its first and second attempt, through its token.
    const crowd = Array.from({ length: 40 }, (_, i) => {
      let tries = 0;
      return client(s.url, {
        minReconnectDelay: 300,
        maxReconnectDelay: 10_000,
        getToken: async () => {
          tries++;
          if (tries === 1) firstTry.set(`c${i}`, Date.now());
          if (tries === 2) firstRetry.set(`c${i}`, Date.now());
          return `c${i}`;
        },
      });
    });
    for (const c of crowd) c.connect();
    // Wait for every client to retry once.
    await vi.waitUntil(() => firstRetry.size === crowd.length, { timeout: 3000, interval: 5 });
    const delays = [...firstRetry].map(([id, t]) => t - firstTry.get(id)!);
    // Uniform over [0, 300): spread over most of the window, not a synchronized wave.
    const buckets = new Set(delays.map((d) => Math.floor(d / 30)));
    expect(buckets.size).toBeGreaterThanOrEqual(6);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(150);
  });
});
