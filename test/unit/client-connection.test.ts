/**
 * The client's connection state machine against a scripted `ws` server:
 * connect, requests, heartbeat, reconnect with recovery, terminal closes.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient, type ClientOptions, type ClientState, type DisconnectedEvent, type Publication } from '../../src/client/index.js';
import { DEVICE_KEY } from '../../src/client/options.js';
import { FakeServer } from './client-fake-server.js';
import { sleep } from '../helpers/wait.js';

const servers: FakeServer[] = [];
const clients: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(opts: Partial<ClientOptions> = {}, server?: Parameters<typeof FakeServer.start>[0]) {
  const s = await FakeServer.start(server);
  servers.push(s);
  const client = new SwitchboardClient({
    url: s.url,
    WebSocket,
    params: { user: 'alice' },
    minReconnectDelay: 10,
    maxReconnectDelay: 40,
    requestTimeout: 1000,
    ...opts,
  });
  clients.push(client);
  const states: ClientState[] = [];
  const drops: DisconnectedEvent[] = [];
  const messages: Publication[] = [];
  client.on('state', (e) => states.push(e.state));
  client.on('disconnected', (e) => drops.push(e));
  client.on('message', (m) => messages.push(m));
  return { s, client, states, drops, messages };
}

describe('client connection', () => {
  it('rejects bad options at once', () => {
    expect(() => new SwitchboardClient({ url: '' })).toThrow(TypeError);
    // Without a global WebSocket (Node 20; Node 22 and later have one) the class must be passed.
    vi.stubGlobal('WebSocket', undefined);
    try {
      expect(() => new SwitchboardClient({ url: 'ws://x/ws' })).toThrow(/WebSocket/);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(() => new SwitchboardClient({ url: 'ws://x/ws', WebSocket, minReconnectDelay: 10, maxReconnectDelay: 5 })).toThrow(TypeError);
    expect(() => new SwitchboardClient({ url: 'not a url', WebSocket })).toThrow();
    const c = new SwitchboardClient({ url: 'ws://x/ws', WebSocket });
    expect(() => c.subscribe('bad channel!')).toThrow(expect.objectContaining({ code: 'bad_request' }));
    expect(() => c.publish('ok', undefined)).toThrow(expect.objectContaining({ code: 'bad_request' }));
    expect(() => c.send('', 1)).toThrow(expect.objectContaining({ code: 'bad_request' }));
  });

  it('connects with the subprotocol, token and params, and is connected only after welcome', async () => {
    const { s, client, states } = await setup({ token: 'T0K', tokenIn: 'query' });
    const connected = new Promise((r) => client.once('connected', r));
    expect(client.state).toBe('disconnected');
    client.connect();
    expect(client.state).toBe('connecting');
    const conn = await s.connection(0);
    expect(conn.ws.protocol).toBe('switchboard.v1');
    expect(conn.url.pathname).toBe('/ws');
    expect(conn.url.searchParams.get('token')).toBe('T0K');
    expect(conn.url.searchParams.get('user')).toBe('alice');
    expect(conn.url.searchParams.has('since')).toBe(false);
    // Pause, not a wait: the client must stay connecting until the welcome, however long that takes.
    await sleep(20);
    expect(client.state).toBe('connecting');
    conn.welcome({ session: 'sess-1', node: 'n1', ping: 30 });
    expect(await connected).toMatchObject({ session: 'sess-1', node: 'n1', user: 'alice', channel: 'user:alice', ping: 30, wasRecovering: false });
    expect(client.state).toBe('connected');
    expect(client.connection?.session).toBe('sess-1');
    expect(states).toEqual(['connecting', 'connected']);
  });

  it('sends the device, and on disconnect() the acks not sent yet, before it closes', async () => {
    const { s, client, messages } = await setup({ device: 'tablet-1', ackInterval: 60_000 });
    client.connect();
    const conn = await s.connection(0);
    expect(conn.url.searchParams.get('device')).toBe('tablet-1');
    conn.welcome({ offset: 0, epoch: 'e1' });
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    for (const offset of [1, 2, 3]) conn.message({ channel: 'user:alice', data: offset, offset, epoch: 'e1' });
    await vi.waitUntil(() => messages.length === 3, { timeout: 2_000, interval: 5 });
    // The batch would wait a minute; disconnect() sends it now, then closes.
    client.disconnect();
    expect(await conn.nextOfType('ack')).toEqual({ type: 'ack', channel: 'user:alice', offset: 3 });
    await vi.waitUntil(() => conn.closed !== undefined, { timeout: 2_000, interval: 5 });
    expect(() => new SwitchboardClient({ url: s.url, WebSocket, device: 'no spaces allowed' })).toThrow(TypeError);
  });

  it('in a browser, names the device with an id it keeps in localStorage; in Node, or with device: null, sends none', async () => {
    const kept = new Map<string, string>();
    const g = globalThis as { localStorage?: unknown };
    const s = await FakeServer.start();
    servers.push(s);
    const open = async (index: number, device?: null): Promise<string | null> => {
      const client = new SwitchboardClient({ url: s.url, WebSocket, params: { user: 'alice' }, ...(device === null ? { device } : {}) });
      clients.push(client);
      client.connect();
      return (await s.connection(index)).url.searchParams.get('device');
    };
    expect(await open(0)).toBeNull();
    g.localStorage = { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => void kept.set(k, v) };
    try {
      const first = await open(1);
      expect(first).toMatch(/^[A-Za-z0-9_\-.:@=,]{1,64}$/);
      expect(kept.get(DEVICE_KEY)).toBe(first);
      expect(await open(2)).toBe(first);
      expect(await open(3, null)).toBeNull();
    } finally {
      delete g.localStorage;
    }
  });

  it('calls getToken before every connect and prefers it to token', async () => {
    let n = 0;
    const { s, client } = await setup({ token: 'fixed', getToken: async () => `fresh-${++n}`, tokenIn: 'query' });
    client.connect();
    const c0 = await s.connection(0);
    expect(c0.url.searchParams.get('token')).toBe('fresh-1');
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.kill();
    const c1 = await s.connection(1);
    expect(c1.url.searchParams.get('token')).toBe('fresh-2');
  });

  it('by default sends the token in a first connect frame, never in the URL, a fresh one from getToken each time', async () => {
    let n = 0;
    const { s, client } = await setup({ getToken: async () => `fresh-${++n}` });
    client.connect();
    const c0 = await s.connection(0);
    expect(c0.url.searchParams.has('token')).toBe(false);
    expect(c0.url.search).not.toContain('fresh');
    expect(await c0.next()).toEqual({ type: 'connect', token: 'fresh-1' });
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.kill();
    const c1 = await s.connection(1);
    expect(c1.url.searchParams.has('token')).toBe(false);
    expect(await c1.next()).toEqual({ type: 'connect', token: 'fresh-2' });
    expect(() => new SwitchboardClient({ url: s.url, WebSocket, tokenIn: 'header' as 'query' })).toThrow(/tokenIn/);
  });

  it('sends no connect frame without a token', async () => {
    const { s, client } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    expect(c0.frames.filter((f) => f.type === 'connect')).toEqual([]);
  });

  it('retries with backoff when getToken rejects, reporting the error', async () => {
    let calls = 0;
    const errors: string[] = [];
    const { s, client } = await setup({
      getToken: async () => {
        if (++calls < 3) throw new Error('auth service down');
        return 'ok';
      },
      tokenIn: 'query',
    });
    client.on('error', (e) => errors.push(e.error.code));
    client.connect();
    const c = await s.connection(0);
    expect(calls).toBe(3);
    expect(c.url.searchParams.get('token')).toBe('ok');
    expect(errors).toEqual(['token', 'token']);
  });

  it('resolves publish/send/ping from replies and rejects with the server error code', async () => {
    const { s, client } = await setup();
    client.connect();
    const conn = await s.connection(0);
    conn.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });

    const pub = client.publish('room', { hi: 1 });
    const pubFrame = await conn.nextOfType('publish');
    expect(pubFrame).toEqual({ type: 'publish', id: expect.any(Number), channel: 'room', data: { hi: 1 } });
    conn.reply(pubFrame, { offset: 7, epoch: 'e9' });
    await expect(pub).resolves.toEqual({ offset: 7, epoch: 'e9' });

    const sent = client.send('bob', 'yo');
    const sendFrame = await conn.nextOfType('send');
    expect(sendFrame).toMatchObject({ user: 'bob', data: 'yo' });
    expect(sendFrame.id).toBeGreaterThan(pubFrame.id as number);
    conn.send({ type: 'reply', id: sendFrame.id as number, error: { code: 'forbidden', message: 'nope' } });
    await expect(sent).rejects.toMatchObject({ code: 'forbidden', message: 'nope' });

    const ping = client.ping();
    const pingFrame = await conn.nextOfType('ping');
    conn.send({ type: 'pong', id: pingFrame.id as number });
    await expect(ping).resolves.toBeGreaterThanOrEqual(0);
  });

  it('rejects a request with timeout when no reply comes', async () => {
    const { s, client } = await setup({ requestTimeout: 80 });
    client.connect();
    (await s.connection(0)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    await expect(client.publish('room', 1)).rejects.toMatchObject({ code: 'timeout' });
  });

  it('queues requests made while connecting, sends them after welcome, and bounds the queue', async () => {
    const { s, client } = await setup({ maxQueuedRequests: 2 });
    client.connect();
    const p1 = client.publish('room', 1);
    const p2 = client.send('bob', 2);
    await expect(client.publish('room', 3)).rejects.toMatchObject({ code: 'queue_full' });
    const conn = await s.connection(0);
    conn.welcome();
    const f1 = await conn.nextOfType('publish');
    const f2 = await conn.nextOfType('send');
    conn.reply(f1, { offset: 1, epoch: 'e' });
    conn.reply(f2, {});
    await expect(p1).resolves.toEqual({ offset: 1, epoch: 'e' });
    await expect(p2).resolves.toEqual({});
  });

  it('rejects requests at once while disconnected', async () => {
    const { client } = await setup();
    await expect(client.publish('room', 1)).rejects.toMatchObject({ code: 'disconnected' });
  });

  it('answers a server ping with pong at once', async () => {
    const { s, client } = await setup();
    client.connect();
    const conn = await s.connection(0);
    conn.welcome();
    conn.send({ type: 'ping' });
    expect(await conn.nextOfType('pong')).toEqual({ type: 'pong' });
  });

  it('on a drop: rejects in-flight requests with disconnected, reconnects, and recovers the personal channel', async () => {
    const { s, client, states, drops, messages } = await setup();
    const personal: unknown[] = [];
    client.on('personal', (m) => personal.push(m.data));
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome({ offset: 2, epoch: 'pe' });
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.message({ channel: 'user:alice', data: 'three', offset: 3, epoch: 'pe', from: 'bob' });
    c0.message({ channel: 'user:alice', data: 'four', offset: 4, epoch: 'pe' });
    await vi.waitUntil(() => personal.length === 2, { timeout: 2_000, interval: 5 });
    const inflight = client.publish('room', 'x');
    await c0.nextOfType('publish');
    c0.kill();
    await expect(inflight).rejects.toMatchObject({ code: 'disconnected' });
    expect(drops[0]).toMatchObject({ code: 1006, reconnect: true });

    const c1 = await s.connection(1);
    expect(c1.url.searchParams.get('since')).toBe('4');
    expect(c1.url.searchParams.get('epoch')).toBe('pe');
    // The server repeats offset 4 (already delivered) and adds 5 and 6.
    c1.welcome({
      offset: 6,
      epoch: 'pe',
      recovered: true,
      messages: [4, 5, 6].map((o) => ({ channel: 'user:alice', data: `m${o}`, offset: o, epoch: 'pe' })),
    });
    await vi.waitUntil(() => personal.length === 4, { timeout: 2_000, interval: 5 });
    expect(personal).toEqual(['three', 'four', 'm5', 'm6']);
    expect(messages.map((m) => m.offset)).toEqual([3, 4, 5, 6]);
    expect(states).toEqual(['connecting', 'connected', 'connecting', 'connected']);
    expect(client.personalPosition).toEqual({ offset: 6, epoch: 'pe' });
  });

  it('holds personal messages that arrive before the welcome and delivers them after its messages', async () => {
    const { s, client, messages } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.message({ channel: 'user:alice', data: 'early', offset: 3, epoch: 'pe' });
    c0.message({ channel: 'other', data: 'stray', offset: 1, epoch: 'x' });
    c0.welcome({ offset: 2, epoch: 'pe', messages: [{ channel: 'user:alice', data: 'in-welcome', offset: 2, epoch: 'pe' }] });
    await vi.waitUntil(() => messages.length === 2, { timeout: 2_000, interval: 5 });
    // Pause, not a wait: no third message may follow.
    await sleep(20);
    expect(messages.map((m) => m.data)).toEqual(['in-welcome', 'early']);
  });

  it('reports a failed personal recovery with reset and connected.recovered = false', async () => {
    const { s, client } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome({ offset: 10, epoch: 'old' });
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.kill();
    const resets: unknown[] = [];
    client.on('reset', (e) => resets.push(e));
    const connected = new Promise((r) => client.once('connected', r));
    const c1 = await s.connection(1);
    expect(c1.url.searchParams.get('since')).toBe('10');
    c1.welcome({ offset: 3, epoch: 'new', recovered: false });
    expect(await connected).toMatchObject({ wasRecovering: true, recovered: false });
    expect(resets).toEqual([{ channel: 'user:alice', offset: 3, epoch: 'new' }]);
    expect(client.personalPosition).toEqual({ offset: 3, epoch: 'new' });
  });

  it('backs off between failed attempts and resets the backoff after a welcome', async () => {
    const randoms: number[] = [];
    const { s, client } = await setup({ minReconnectDelay: 20, maxReconnectDelay: 1000, random: () => (randoms.push(1), 0.999) });
    client.connect();
    (await s.connection(0)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    const t0 = Date.now();
    s.connections[0]!.kill();
    await s.connection(1);
    // First retry after a welcome: window min * 2^0 = 20 ms.
    expect(Date.now() - t0).toBeLessThan(400);
    expect(randoms.length).toBe(1);
  });

  it('keeps reconnecting through HTTP 401 refusals (seen as 1006) with growing backoff', async () => {
    let refuse = 3;
    const { s, client, drops } = await setup({ minReconnectDelay: 5, maxReconnectDelay: 50 }, { reject: () => (refuse-- > 0 ? 401 : 0) });
    client.connect();
    const conn = await s.connection(0);
    expect(s.attempts.length).toBe(4);
    expect(drops.map((d) => d.code)).toEqual([1006, 1006, 1006]);
    expect(drops.every((d) => d.reconnect)).toBe(true);
    conn.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
  });

  it('stops on a terminal close code (4000-4099) and rejects queued requests', async () => {
    const { s, client, drops } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.ws.close(4001, 'token expired');
    await vi.waitUntil(() => client.state === 'disconnected', { timeout: 2_000, interval: 5 });
    expect(drops).toEqual([{ code: 4001, reason: 'token expired', reconnect: false }]);
    // Pause, not a wait: no reconnect attempt may follow a 4001.
    await sleep(100);
    expect(s.attempts.length).toBe(1);
  });

  it('reconnects on 4100-4199 closes', async () => {
    const { s, client, drops } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.ws.close(4100, 'draining');
    await s.connection(1);
    expect(drops[0]).toEqual({ code: 4100, reason: 'draining', reconnect: true });
  });

  it('honours a disconnect frame: reconnect false stops, reconnect true retries', async () => {
    const { s, client, drops } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c0.send({ type: 'disconnect', code: 4101, reason: 'slow consumer', reconnect: true });
    const c1 = await s.connection(1);
    expect(drops[0]).toEqual({ code: 4101, reason: 'slow consumer', reconnect: true });
    c1.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    c1.send({ type: 'disconnect', code: 4150, reason: 'go away', reconnect: false });
    await vi.waitUntil(() => client.state === 'disconnected', { timeout: 2_000, interval: 5 });
    expect(drops[1]).toEqual({ code: 4150, reason: 'go away', reconnect: false });
    // The client closed the socket itself, with the server's code.
    await vi.waitUntil(() => c1.closed, { timeout: 2_000, interval: 5 });
    expect(c1.closed?.code).toBe(4150);
    // Pause, not a wait: no reconnect attempt may follow reconnect: false.
    await sleep(80);
    expect(s.connections.length).toBe(2);
  });

  it('client.disconnect() stops reconnecting, rejects queued requests and can connect again', async () => {
    const { s, client, drops } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    const queued = client.publish('room', 1);
    client.disconnect();
    await expect(queued).rejects.toMatchObject({ code: 'disconnected' });
    expect(client.state).toBe('disconnected');
    expect(drops).toEqual([{ code: 1000, reason: 'client disconnect', reconnect: false }]);
    await vi.waitUntil(() => c0.closed, { timeout: 2_000, interval: 5 });
    client.connect();
    (await s.connection(1)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
  });

  it('ignores late frames of a replaced socket', async () => {
    const { s, client, messages } = await setup();
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    client.disconnect();
    client.connect();
    // The old socket is closing; whatever it still delivers must be ignored.
    c0.message({ channel: 'user:alice', data: 'late', offset: 1, epoch: 'e1' });
    c0.welcome();
    const c1 = await s.connection(1);
    // Pause, not a wait: the old socket's late frames must change nothing.
    await sleep(50);
    expect(client.state).toBe('connecting');
    expect(messages).toEqual([]);
    c1.welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
  });

  it('closes a silent connection after ping + grace and reconnects (heartbeat)', async () => {
    const { s, client, drops } = await setup({ heartbeatGrace: 100 });
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome({ ping: 0.1 });
    const t0 = Date.now();
    await s.connection(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(180);
    expect(drops[0]).toMatchObject({ code: 4103, reason: 'heartbeat timeout', reconnect: true });
  });

  it('keeps a connection whose server pings within ping + grace', async () => {
    const { s, client } = await setup({ heartbeatGrace: 300 });
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome({ ping: 0.2 });
    const timer = setInterval(() => c0.send({ type: 'ping' }), 100);
    // Pause, not a wait: time passes while the server pings; the connection must survive it.
    await sleep(900);
    clearInterval(timer);
    expect(s.connections.length).toBe(1);
    expect(client.state).toBe('connected');
    expect(c0.frames.filter((f) => f.type === 'pong').length).toBeGreaterThanOrEqual(5);
  });

  it('gives up on an attempt that gets no welcome within connectTimeout', async () => {
    const { s, client, drops } = await setup({ connectTimeout: 100 });
    client.connect();
    await s.connection(1, 2000);
    expect(drops[0]).toMatchObject({ reason: 'connect timeout', reconnect: true });
  });

  it('reports undecodable frames as errors and stays connected', async () => {
    const { s, client } = await setup();
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.error.code));
    client.connect();
    const c0 = await s.connection(0);
    c0.welcome();
    c0.ws.send('not json');
    c0.send({ type: 'mystery' });
    c0.send({ type: 'message', channel: 5 });
    c0.send({ type: 'error', error: { code: 'rate_limited', message: 'slow down' } });
    await vi.waitUntil(() => errors.length === 4, { timeout: 2_000, interval: 5 });
    expect(errors).toEqual(['bad_frame', 'bad_frame', 'bad_frame', 'rate_limited']);
    expect(client.state).toBe('connected');
  });

  it('routes a throwing listener to the error event instead of breaking the client', async () => {
    const { s, client } = await setup();
    const errors: unknown[] = [];
    client.on('error', (e) => errors.push(e.error.code));
    client.on('connected', () => {
      throw new Error('app bug');
    });
    client.connect();
    (await s.connection(0)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
    expect(errors).toEqual(['listener']);
  });
});
