/**
 * A client within the default limits can always (re)subscribe: the SDK
 * holds 1000 channels (the default --max-subscriptions), each with a
 * recovery position, and resends every subscribe at once on each of ten
 * reconnects (five closed by the server, five by a cut transport); every
 * time all 1000 are subscribed again, recover what was published while
 * away, and get what is published next, and nothing is ever rate limited;
 * then it leaves all 1000 at once.
 * Churn past the burst is still refused, and its 4129 reaches the SDK's
 * `error` event.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ServerCloseError, SwitchboardClient, type ClientErrorEvent, type DisconnectedEvent, type SubscribedEvent } from '../../src/client/index.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { useNodes } from '../helpers/fixture.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const { node } = useNodes();
const clients: SwitchboardClient[] = [];
const proxies: TcpProxy[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});
afterAll(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** A client for `user` that records its errors, drops and subscriptions. */
function client(url: string, user: string) {
  const c = new SwitchboardClient({ url, WebSocket, params: { user }, minReconnectDelay: 20, maxReconnectDelay: 200 });
  clients.push(c);
  const errors: ClientErrorEvent[] = [];
  const drops: DisconnectedEvent[] = [];
  c.on('error', (e) => errors.push(e));
  c.on('disconnected', (e) => drops.push(e));
  return { c, errors, drops };
}

describe('many channels across reconnects', () => {
  it('resubscribes 1000 channels with their positions on each of 10 reconnects under the default limits, never rate limited', async () => {
    const n = await node();
    expect(n.options.limits).toEqual(DEFAULT_LIMITS);
    const proxy = await startTcpProxy(n.port);
    proxies.push(proxy);
    const { c, errors, drops } = client(`ws://127.0.0.1:${proxy.port}/ws`, 'wide');
    const channels = Array.from({ length: DEFAULT_LIMITS.maxSubscriptions }, (_, i) => `wide.${i}`);
    /** Data received per channel, in order. */
    const got = new Map<string, unknown[]>(channels.map((ch) => [ch, []]));
    const subscribed: SubscribedEvent[] = [];
    const subs = channels.map((ch) => {
      const sub = c.subscribe(ch);
      sub.on('message', (m) => got.get(ch)!.push(m.data));
      sub.on('subscribed', (e) => subscribed.push(e));
      return sub;
    });
    const publishAll = async (data: number): Promise<void> => {
      const res = await api(n.url(), 'POST', '/api/broadcast', { channels, data });
      expect(res.status).toBe(200);
    };
    /** Every channel got 0..upTo, in order, each once. */
    const allGot = (upTo: number): boolean => channels.every((ch) => got.get(ch)!.length === upTo + 1);
    const expectAllGot = (upTo: number): void => {
      const want = Array.from({ length: upTo + 1 }, (_, i) => i);
      for (const ch of channels) expect(got.get(ch), ch).toEqual(want);
    };

    c.connect();
    await Promise.all(subs.map((s) => s.ready(20_000)));
    expect(subscribed).toHaveLength(1000);
    // Every channel gets a position: each resubscription below carries `since`.
    await publishAll(0);
    await vi.waitUntil(() => allGot(0), { timeout: 20_000, interval: 20 });
    expect(subs.every((s) => s.position?.offset === 1)).toBe(true);

    for (let round = 1; round <= 10; round++) {
      const before = subscribed.length;
      const away = new Promise<void>((resolve) => c.once('disconnected', () => resolve()));
      if (round % 2) {
        const kicked = await api(n.url(), 'POST', '/api/disconnect', { user: 'wide', code: 4100, reason: `round ${round}` });
        expect(kicked.body).toEqual({ sessions: 1 });
      } else {
        // The transport goes: a dropped connection, no close from the server.
        proxy.cut();
        proxy.restore();
      }
      await away;
      // Published while the client is away or reconnecting: recovered from its position, or delivered live.
      await publishAll(round);
      await vi.waitUntil(() => c.state === 'connected' && subscribed.length === before + 1000 && subs.every((s) => s.state === 'subscribed'), {
        timeout: 20_000,
        interval: 20,
      });
      const again = subscribed.slice(before);
      expect(new Set(again.map((e) => e.channel)).size).toBe(1000);
      expect(again.every((e) => e.wasRecovering && e.recovered)).toBe(true);
      await vi.waitUntil(() => allGot(round), { timeout: 20_000, interval: 20 });
      // And what is published next arrives on every channel.
      await publishAll(round + 0.5);
      await vi.waitUntil(() => channels.every((ch) => got.get(ch)!.at(-1) === round + 0.5), { timeout: 20_000, interval: 20 });
      for (const ch of channels) got.get(ch)!.pop();
      expectAllGot(round);
    }

    // Right after a whole resubscription, leaving all of it at once is not refused either: each subscribe paid for it.
    const held = async (): Promise<number> => {
      const { body } = await api(n.url(), 'GET', '/api/nodes');
      return (body.nodes as Array<{ id: string; subscriptions: number }>).find((x) => x.id === n.id)?.subscriptions ?? -1;
    };
    expect(await held()).toBe(1000);
    const session = c.connection?.session;
    for (const sub of subs) sub.unsubscribe();
    // Fenced by a ping: every unsubscribe before it has its reply.
    await c.ping();
    expect(await held()).toBe(0);
    expect(c.connection?.session).toBe(session);

    expect(drops.map((d) => d.code)).toEqual([4100, 1006, 4100, 1006, 4100, 1006, 4100, 1006, 4100, 1006]);
    expect(errors.map((e) => e.error.code)).not.toContain('rate_limited');
    expect(errors.filter((e) => e.error instanceof ServerCloseError)).toEqual([]);
    const metrics = await fetch(n.url('/metrics')).then((r) => r.text());
    expect(metrics).not.toMatch(/switchboard_disconnects_total\{[^}]*code="4129"[^}]*\} [1-9]/);
  }, 180_000);

  it('still refuses subscribe/unsubscribe churn past the burst, and the 4129 reaches the SDK as an error event', async () => {
    const n = await node({ limits: { maxSubscriptions: 20, maxSubscribesPerSecond: 1 } });
    const { c, errors, drops } = client(`ws://127.0.0.1:${n.port}/ws`, 'churner');
    c.connect();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 5000, interval: 10 });
    const closed = new Promise<void>((resolve) => c.once('disconnected', () => resolve()));
    // Subscribe and unsubscribe in a loop: two frames a round, far past the burst of 20.
    for (let i = 0; i < 200 && c.state === 'connected'; i++) {
      const sub = c.subscribe(`churn.${i}`);
      sub.on('error', () => undefined); // refusals are retried; not under test here
      sub.unsubscribe();
    }
    await closed;
    expect(drops[0]).toMatchObject({ code: 4129, reconnect: true });
    const closeErrors = errors.map((e) => e.error).filter((e): e is ServerCloseError => e instanceof ServerCloseError);
    expect(closeErrors).toHaveLength(1);
    expect(closeErrors[0]).toMatchObject({ code: 'server_close', closeCode: 4129, reconnect: true });
    expect(closeErrors[0]?.reason).toContain('--max-subscribes-per-second');
    // A fresh connection gets a fresh budget.
    await vi.waitUntil(() => c.state === 'connected', { timeout: 5000, interval: 10 });
  });
});
