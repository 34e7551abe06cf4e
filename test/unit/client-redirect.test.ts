/**
 * Hash-ring routing on the client: following a 4102 redirect at once (with
 * recovery), the bound on redirect loops, and `resolveUrl` per attempt —
 * against scripted `ws` servers.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { decodeServerFrame } from '../../src/client/decode.js';
import { MAX_REDIRECTS, SwitchboardClient, type ClientOptions, type DisconnectedEvent, type Publication } from '../../src/client/index.js';
import { redirectProblem } from '../../src/client/transport.js';
import { FakeServer, type FakeConnection, type FakeServerOptions } from './client-fake-server.js';
import { sleep } from '../helpers/wait.js';

const servers: FakeServer[] = [];
const clients: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options?: FakeServerOptions): Promise<FakeServer> {
  const s = await FakeServer.start(options);
  servers.push(s);
  return s;
}

function client(opts: Partial<ClientOptions> & { url: string }) {
  const c = new SwitchboardClient({ WebSocket, params: { user: 'alice' }, minReconnectDelay: 5, maxReconnectDelay: 20, ...opts });
  clients.push(c);
  const drops: DisconnectedEvent[] = [];
  const errors: string[] = [];
  const messages: Publication[] = [];
  c.on('disconnected', (e) => drops.push(e));
  c.on('error', (e) => errors.push(e.error.code));
  c.on('message', (m) => messages.push(m));
  return { c, drops, errors, messages };
}

/** What a hash-ring node does with a session of a user it does not own. */
function redirect(conn: FakeConnection, url: unknown, code = 4102, reconnect = true): void {
  conn.send({ type: 'disconnect', code, reason: 'moved', reconnect, url });
  conn.ws.close(code, 'moved');
}

/** A socket class for a client that believes it speaks TLS (`wss:`): it opens the loopback fake servers' `ws:` in its place. */
class PretendTls extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url.replace(/^wss:/, 'ws:'), protocols);
  }
}

const pub = (channel: string, offset: number, epoch: string): Publication => ({ channel, data: `${channel}#${offset}`, offset, epoch });

describe('client redirect (4102 with url)', () => {
  it('reconnects to the url at once, with token, params and recovery positions, and nothing lost or doubled', async () => {
    const s1 = await server();
    const s2 = await server();
    let random = 0.999; // any backoff would wait ~1 s
    const { c, drops, messages } = client({ url: s1.url, token: 'T0K', tokenIn: 'query', minReconnectDelay: 1000, maxReconnectDelay: 2000, random: () => random });
    c.connect();
    c.subscribe('room');
    const c0 = await s1.connection(0);
    c0.welcome({ offset: 2, epoch: 'pe' });
    const sub0 = await c0.nextOfType('subscribe');
    c0.reply(sub0, { channel: 'room', offset: 5, epoch: 're', recovered: true, messages: [] });
    c0.message(pub('user:alice', 3, 'pe'));
    c0.message(pub('room', 6, 're'));
    await vi.waitUntil(() => messages.length === 2, { timeout: 2_000, interval: 5 });

    const t0 = Date.now();
    redirect(c0, s2.url);
    const c1 = await s2.connection(0);
    expect(Date.now() - t0).toBeLessThan(300);
    expect(drops).toEqual([{ code: 4102, reason: 'moved', reconnect: true, url: s2.url }]);
    expect(c1.url.pathname).toBe('/ws');
    expect(c1.url.searchParams.get('token')).toBe('T0K');
    expect(c1.url.searchParams.get('user')).toBe('alice');
    expect(c1.url.searchParams.get('since')).toBe('3');
    expect(c1.url.searchParams.get('epoch')).toBe('pe');
    expect(s1.attempts.length).toBe(1);

    // The owner repeats what the client already has (3, 6) and adds 4 and 7.
    c1.welcome({ offset: 4, epoch: 'pe', recovered: true, messages: [pub('user:alice', 3, 'pe'), pub('user:alice', 4, 'pe')] });
    const sub1 = await c1.nextOfType('subscribe');
    expect(sub1.since).toEqual({ offset: 6, epoch: 're' });
    c1.reply(sub1, { channel: 'room', offset: 7, epoch: 're', recovered: true, messages: [pub('room', 6, 're'), pub('room', 7, 're')] });
    await vi.waitUntil(() => messages.length === 4, { timeout: 2_000, interval: 5 });
    // Pause, not a wait: nothing may follow the four messages, in this order.
    await sleep(30);
    expect(messages.map((m) => `${m.channel}@${m.offset}`)).toEqual(['user:alice@3', 'room@6', 'user:alice@4', 'room@7']);
    expect(c.state).toBe('connected');

    // A later drop of another kind goes back to the configured url.
    random = 0;
    c1.kill();
    await s1.connection(1);
    expect(drops[1]).toEqual({ code: 1006, reason: '', reconnect: true });
    expect(s2.attempts.length).toBe(1);
  });

  it(`follows at most ${MAX_REDIRECTS} redirects in a row, then backs off to the configured url`, async () => {
    const seen: Array<{ at: number; where: string }> = [];
    const s2: FakeServer = await server({
      onConnection: (conn) => {
        seen.push({ at: Date.now(), where: 's2' });
        redirect(conn, s2.url); // a node that keeps sending the user to itself: a loop
      },
    });
    const s1 = await server({
      onConnection: (conn) => {
        seen.push({ at: Date.now(), where: 's1' });
        redirect(conn, s2.url);
      },
    });
    const { c, drops } = client({ url: s1.url, minReconnectDelay: 400, maxReconnectDelay: 1000, random: () => 0.999 });
    c.connect();
    await vi.waitUntil(() => seen.length >= 6, { timeout: 4000, interval: 5 });
    c.disconnect();

    expect(seen.slice(0, 6).map((s) => s.where)).toEqual(['s1', 's2', 's2', 's2', 's1', 's2']);
    expect(drops.slice(0, 5).map((d) => d.url)).toEqual([s2.url, s2.url, s2.url, undefined, s2.url]);
    expect(drops.slice(0, 5).every((d) => d.code === 4102 && d.reconnect)).toBe(true);
    const gap = (i: number) => (seen[i] as { at: number }).at - (seen[i - 1] as { at: number }).at;
    for (const i of [1, 2, 3, 5]) expect(gap(i)).toBeLessThan(200); // redirects followed at once
    expect(gap(4)).toBeGreaterThanOrEqual(350); // the 4th backs off: window 400 ms, jitter 0.999
  });

  it('ignores a url that is not ws:/wss:, and a url on other codes or without reconnect', async () => {
    const s2 = await server();
    const s1 = await server();
    const { c, drops, errors } = client({ url: s1.url });
    c.connect();
    const c0 = await s1.connection(0);
    c0.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });

    redirect(c0, 'javascript:alert(1)');
    const c1 = await s1.connection(1);
    expect(drops[0]).toEqual({ code: 4102, reason: 'moved', reconnect: true });
    expect(errors).toEqual(['bad_frame']);

    c1.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c1, 'https://127.0.0.1/ws');
    const c2 = await s1.connection(2);
    expect(errors).toEqual(['bad_frame', 'bad_frame']);

    c2.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c2, s2.url, 4100); // draining, not moved
    const c3 = await s1.connection(3);
    expect(drops[2]).toEqual({ code: 4100, reason: 'moved', reconnect: true });

    c3.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c3, s2.url, 4102, false);
    await vi.waitUntil(() => c.state === 'disconnected', { timeout: 2_000, interval: 5 });
    expect(drops[3]).toEqual({ code: 4102, reason: 'moved', reconnect: false });
    // Pause, not a wait: no attempt may follow reconnect: false.
    await sleep(60);
    expect(s2.attempts.length).toBe(0);
    expect(s1.attempts.length).toBe(4);
  });

  it('never follows a redirect from wss: to ws: (the token would travel in clear), but ws: to wss: and wss: to wss:', async () => {
    const secure = (url: string) => url.replace(/^ws:/, 'wss:');
    const s2 = await server();
    const s1 = await server();
    const { c, drops, errors } = client({ url: secure(s1.url), WebSocket: PretendTls as never });
    c.connect();
    const c0 = await s1.connection(0);
    c0.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });

    redirect(c0, s2.url); // wss: → ws:
    const c1 = await s1.connection(1);
    expect(drops[0]).toEqual({ code: 4102, reason: 'moved', reconnect: true });
    expect(errors).toEqual(['bad_frame']);
    expect(s2.attempts.length).toBe(0);

    c1.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c1, secure(s2.url)); // wss: → wss:
    await s2.connection(0);
    expect(drops[1]).toEqual({ code: 4102, reason: 'moved', reconnect: true, url: secure(s2.url) });
    expect(errors).toEqual(['bad_frame']);
  });

  it('refuses a redirect url longer than 2048 characters; follows ws: to wss:', async () => {
    const s2 = await server();
    const s1 = await server();
    const { c, drops, errors } = client({ url: s1.url, WebSocket: PretendTls as never });
    c.connect();
    const c0 = await s1.connection(0);
    c0.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c0, `${s2.url}?pad=${'x'.repeat(2100)}`);
    const c1 = await s1.connection(1);
    expect(errors).toEqual(['bad_frame']);
    c1.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c1, s2.url.replace(/^ws:/, 'wss:'));
    await s2.connection(0);
    expect(drops[1]?.url).toBe(s2.url.replace(/^ws:/, 'wss:'));
  });

  it('redirectProblem: only ws:/wss:, bounded, and no downgrade from wss: or https:', () => {
    expect(redirectProblem('wss://a/ws', 'wss://b/ws')).toBeUndefined();
    expect(redirectProblem('ws://a/ws', 'wss://b/ws')).toBeUndefined();
    expect(redirectProblem('ws://a/ws', 'ws://b/ws')).toBeUndefined();
    expect(redirectProblem('wss://a/ws', 'ws://b/ws')).toMatch(/from wss: to ws:/);
    expect(redirectProblem('WSS://a/ws', 'ws://b/ws')).toMatch(/from wss: to ws:/);
    expect(redirectProblem('https://api/api/route', 'ws://b/ws')).toMatch(/from wss: to ws:/);
    expect(redirectProblem('ws://a/ws', 'https://b/ws')).toMatch(/not a ws:\/wss: URL/);
    expect(redirectProblem('ws://a/ws', 'javascript:alert(1)')).toMatch(/not a ws:\/wss: URL/);
    expect(redirectProblem('ws://a/ws', `ws://b/${'x'.repeat(2048)}`)).toMatch(/not a ws:\/wss: URL/);
  });

  it('client.disconnect() during a pending redirect forgets it', async () => {
    const s2 = await server();
    const s1 = await server();
    const { c } = client({ url: s1.url });
    c.on('disconnected', (e) => {
      if (e.url) c.disconnect();
    });
    c.connect();
    const c0 = await s1.connection(0);
    c0.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c0, s2.url);
    await vi.waitUntil(() => c.state === 'disconnected', { timeout: 2_000, interval: 5 });
    c.connect();
    await s1.connection(1);
    // Pause, not a wait: a manual connect goes to the configured url, never to the old redirect.
    await sleep(30);
    expect(s2.attempts.length).toBe(0);
  });

  it('decode passes a string url of a disconnect frame through, and drops any other', () => {
    const frame = (url: unknown) => decodeServerFrame(JSON.stringify({ type: 'disconnect', code: 4102, reason: 'm', reconnect: true, url }));
    expect(frame('ws://h:1/ws')).toEqual({ ok: true, frame: { type: 'disconnect', code: 4102, reason: 'm', reconnect: true, url: 'ws://h:1/ws' } });
    expect(frame(42)).toEqual({ ok: true, frame: { type: 'disconnect', code: 4102, reason: 'm', reconnect: true } });
    expect(frame(undefined)).toEqual({ ok: true, frame: { type: 'disconnect', code: 4102, reason: 'm', reconnect: true } });
  });
});

describe('client resolveUrl', () => {
  it('is asked before every attempt; a rejection, a bad value or no answer falls back to url, reported', async () => {
    const s2 = await server();
    const s1 = await server();
    const answers: Array<() => Promise<unknown>> = [
      async () => s2.url,
      async () => {
        throw new Error('route service down');
      },
      async () => 'ftp://127.0.0.1/ws',
      async () => 42,
      () => new Promise(() => {}), // never answers
    ];
    let calls = 0;
    const { c, errors } = client({
      url: s1.url,
      connectTimeout: 300,
      resolveUrl: () => {
        calls++;
        return (answers.shift() ?? (async () => s2.url))() as Promise<string>;
      },
    });
    c.connect();
    const a = await s2.connection(0);
    expect(calls).toBe(1);
    expect(a.url.searchParams.get('user')).toBe('alice');
    a.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    expect(errors).toEqual([]);

    for (let i = 0; i < 3; i++) {
      if (i === 0) a.kill();
      else s1.connections[i - 1]!.kill();
      await s1.connection(i);
      expect(calls).toBe(2 + i);
      expect(errors.length).toBe(1 + i);
    }
    const t0 = Date.now();
    s1.connections[2]!.kill();
    await s1.connection(3); // after the resolver's timeout (connectTimeout)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(errors).toEqual(['resolve_url', 'resolve_url', 'resolve_url', 'resolve_url']);

    s1.connections[3]!.kill();
    await s2.connection(1);
    expect(calls).toBe(6);
  });

  it('is not asked for the attempt that follows a redirect', async () => {
    const s2 = await server();
    const s1 = await server();
    let calls = 0;
    const { c } = client({ url: 'ws://127.0.0.1:1/never', resolveUrl: async () => (calls++, s1.url) });
    c.connect();
    const c0 = await s1.connection(0);
    expect(calls).toBe(1);
    c0.welcome();
    await vi.waitUntil(() => c.state === 'connected', { timeout: 2_000, interval: 5 });
    redirect(c0, s2.url);
    const c1 = await s2.connection(0);
    expect(calls).toBe(1);
    c1.kill();
    await s1.connection(1);
    expect(calls).toBe(2);
  });

  it('rejects a resolveUrl that is not a function at once', () => {
    expect(() => new SwitchboardClient({ url: 'ws://x/ws', WebSocket, resolveUrl: 'ws://y/ws' as never })).toThrow(TypeError);
  });
});
