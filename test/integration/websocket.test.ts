/**
 * The WebSocket endpoint over real sockets: messaging, order, recovery,
 * heartbeat and drain, against a node started in this process.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SwitchboardNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { useNodes } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/wait.js';

const { node, connect } = useNodes();

describe('messaging between two users', () => {
  let n: SwitchboardNode;
  beforeAll(async () => {
    // Bulk sends below go past the default 100 frames/s on purpose.
    n = await node({ limits: { maxMessagesPerSecond: 100_000 } });
  });

  it('welcomes with the personal channel, its position and the heartbeat interval', async () => {
    const a = await connect(n, 'user=alice');
    const w = a.welcome;
    expect(w).toMatchObject({ user: 'alice', channel: 'user:alice', node: n.id, recovered: true, messages: [], ping: 25 });
    expect(typeof w.session).toBe('string');
    expect(typeof w.epoch).toBe('string');
  });

  it('delivers channel and personal messages in order, exactly once, with the sender', async () => {
    const alice = await connect(n, 'user=alice');
    const bob = await connect(n, 'user=bob');
    for (const c of [alice, bob]) expect(await c.request({ type: 'subscribe', channel: 'room.1' })).toHaveProperty('result');
    const total = 200;
    for (let i = 0; i < total; i++) {
      alice.send({ type: 'publish', id: 1000 + i, channel: 'room.1', data: { i } });
      alice.send({ type: 'send', id: 5000 + i, user: 'bob', data: { i } });
    }
    await bob.waitFor((f) => f.type === 'message', 2 * total);
    const room = bob.messages('room.1');
    const personal = bob.messages('user:bob');
    expect(room.map((m) => (m.data as { i: number }).i)).toEqual([...Array(total).keys()]);
    expect(personal.map((m) => (m.data as { i: number }).i)).toEqual([...Array(total).keys()]);
    expect(room.map((m) => m.offset)).toEqual([...Array(total).keys()].map((i) => i + 1));
    expect(room.every((m) => m.from === 'alice')).toBe(true);
    // The publisher, subscribed too, receives the channel's messages once each.
    await alice.waitFor((f) => f.type === 'message' && f.channel === 'room.1', total);
    expect(alice.messages('room.1')).toHaveLength(total);
    expect(alice.messages('user:alice')).toHaveLength(0);
  });

  it('replies to ping with pong and to unsubscribe with {}; messages stop after unsubscribe', async () => {
    const a = await connect(n, 'user=carol');
    a.send({ type: 'ping', id: 7 });
    expect(await a.next((f) => f.type === 'pong')).toEqual({ type: 'pong', id: 7 });
    await a.request({ type: 'subscribe', channel: 'news' });
    expect(await a.request({ type: 'unsubscribe', channel: 'news' })).toEqual({ type: 'reply', id: expect.any(Number), result: {} });
    await api(n.url(), 'POST', '/api/publish', { channel: 'news', data: 'late' });
    await api(n.url(), 'POST', '/api/send', { user: 'carol', data: 'marker' });
    await a.next((f) => f.type === 'message' && f.channel === 'user:carol');
    expect(a.messages('news')).toHaveLength(0);
  });
});

describe('recovery', () => {
  it('a channel subscription with since gets exactly what it missed after a forced disconnect', async () => {
    const n = await node();
    const c1 = await connect(n, 'user=dave');
    await c1.request({ type: 'subscribe', channel: 'feed' });
    for (let i = 1; i <= 5; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'feed', data: i });
    await c1.waitFor((f) => f.type === 'message', 5);
    const last = c1.messages('feed').at(-1);
    // The channel's epoch comes with its messages (the subscribe, before the first publish, had none to give).
    const epoch = last!.epoch!;
    expect(last?.offset).toBe(5);
    // Forced disconnect by the server API, then publications while away.
    const kicked = await api(n.url(), 'POST', '/api/disconnect', { user: 'dave', code: 4100, reason: 'test' });
    expect(kicked.body).toEqual({ sessions: 1 });
    expect((await c1.closed).code).toBe(4100);
    for (let i = 6; i <= 9; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'feed', data: i });
    const c2 = await connect(n, 'user=dave');
    const reply = await c2.request({ type: 'subscribe', channel: 'feed', since: { offset: 5, epoch } });
    expect(reply).toMatchObject({ result: { recovered: true, offset: 9, epoch } });
    const msgs = (reply as { result: { messages: Array<{ offset: number; data: number }> } }).result.messages;
    expect(msgs.map((m) => m.data)).toEqual([6, 7, 8, 9]);
    expect(msgs.map((m) => m.offset)).toEqual([6, 7, 8, 9]);
    // Live messages continue after the recovered ones.
    await api(n.url(), 'POST', '/api/publish', { channel: 'feed', data: 10 });
    expect(await c2.next((f) => f.type === 'message')).toMatchObject({ data: 10, offset: 10 });
  });

  it('says recovered: false when history no longer holds what was missed, or the epoch differs', async () => {
    const n = await node({ defaultNamespace: { historySize: 3 } });
    const c = await connect(n, 'user=erin');
    for (let i = 1; i <= 10; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'short', data: i });
    const epoch = ((await api(n.url(), 'GET', '/api/history/short')).body as { epoch: string }).epoch;
    const tooOld = await c.request({ type: 'subscribe', channel: 'short', since: { offset: 2, epoch } });
    expect(tooOld).toMatchObject({ result: { recovered: false, messages: [], offset: 10, epoch } });
    await c.request({ type: 'unsubscribe', channel: 'short' });
    const inWindow = await c.request({ type: 'subscribe', channel: 'short', since: { offset: 7, epoch } });
    expect(inWindow).toMatchObject({ result: { recovered: true } });
    expect((inWindow as { result: { messages: Array<{ data: number }> } }).result.messages.map((m) => m.data)).toEqual([8, 9, 10]);
    await c.request({ type: 'unsubscribe', channel: 'short' });
    const otherEpoch = await c.request({ type: 'subscribe', channel: 'short', since: { offset: 9, epoch: 'not-it' } });
    expect(otherEpoch).toMatchObject({ result: { recovered: false, messages: [] } });
    await c.request({ type: 'unsubscribe', channel: 'short' });
    // Having seen nothing (offset 0) under a forgotten epoch loses nothing while history starts at 1 …
    for (let i = 1; i <= 2; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'fresh', data: i });
    const sawNothing = await c.request({ type: 'subscribe', channel: 'fresh', since: { offset: 0, epoch: 'forgotten' } });
    expect(sawNothing).toMatchObject({ result: { recovered: true, offset: 2 } });
    expect((sawNothing as { result: { messages: Array<{ data: number }> } }).result.messages.map((m) => m.data)).toEqual([1, 2]);
    // … but not once history has dropped its start.
    const dropped = await c.request({ type: 'subscribe', channel: 'short', since: { offset: 0, epoch: 'forgotten' } });
    expect(dropped).toMatchObject({ result: { recovered: false, messages: [] } });
  });

  it('recovers the personal channel through ?since=&epoch= in the welcome', async () => {
    const n = await node();
    const c1 = await connect(n, 'user=frank');
    await api(n.url(), 'POST', '/api/send', { user: 'frank', data: 'one' });
    // The channel's epoch comes with its first message (the welcome, read before it, had none to give).
    const { epoch } = (await c1.next((f) => f.type === 'message')) as { epoch: string };
    await c1.close();
    await api(n.url(), 'POST', '/api/send', { user: 'frank', data: 'two' });
    await api(n.url(), 'POST', '/api/send', { user: 'frank', data: 'three' });
    const c2 = await connect(n, `user=frank&since=1&epoch=${epoch}`);
    expect(c2.welcome).toMatchObject({ recovered: true, offset: 3, epoch });
    expect(c2.welcome.messages.map((m) => m.data)).toEqual(['two', 'three']);
    const c3 = await connect(n, 'user=frank&since=1&epoch=wrong');
    expect(c3.welcome).toMatchObject({ recovered: false, messages: [], offset: 3 });
  });

  it('refuses a half-given recovery position with HTTP 400', async () => {
    const n = await node();
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=gina&since=3`)).rejects.toMatchObject({ status: 400 });
  });

  it('loses nothing published while a subscription is being recovered', async () => {
    const n = await node();
    const c = await connect(n, 'user=hal');
    for (let i = 1; i <= 50; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'busy', data: i });
    const epoch = ((await api(n.url(), 'GET', '/api/history/busy')).body as { epoch: string }).epoch;
    // Publish concurrently with the recovering subscribe.
    const publishing = (async () => {
      for (let i = 51; i <= 100; i++) await api(n.url(), 'POST', '/api/publish', { channel: 'busy', data: i });
    })();
    const reply = (await c.request({ type: 'subscribe', channel: 'busy', since: { offset: 20, epoch } })) as {
      result: { messages: Array<{ data: number }> };
    };
    await publishing;
    const got = [...reply.result.messages.map((m) => m.data)];
    await c.waitFor((f) => f.type === 'message', 100 - 20 - got.length);
    got.push(...c.messages('busy').map((m) => m.data as number));
    expect(got).toEqual([...Array(80).keys()].map((i) => i + 21));
  });
});

describe('heartbeat', () => {
  it('pings a quiet connection and closes it with 4103 when no answer comes', async () => {
    const n = await node({ ping: 1, pongTimeout: 1 });
    const c = await connect(n, 'user=ivan');
    await c.next((f) => f.type === 'ping', 3000);
    const closed = await c.closed;
    expect(closed.code).toBe(4103);
    expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4103, reconnect: true });
  });

  it('keeps a connection that answers pings', async () => {
    const n = await node({ ping: 1, pongTimeout: 1 });
    const c = await connect(n, 'user=judy');
    c.ws.on('message', (d) => {
      if (JSON.parse(String(d)).type === 'ping') c.send({ type: 'pong' });
    });
    // Pause, not a wait: several ping intervals pass; the connection must survive them.
    await sleep(3500);
    expect(c.frames.filter((f) => f.type === 'ping').length).toBeGreaterThanOrEqual(2);
    expect(c.ws.readyState).toBe(c.ws.OPEN);
  });
});

describe('drain', () => {
  it('closes clients with 4100 (reconnect) and refuses new ones with 503', async () => {
    const n = await node({ drainTimeout: 5 });
    const c = await connect(n, 'user=kim');
    const draining = n.drain();
    expect((await c.closed).code).toBe(4100);
    expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4100, reconnect: true });
    await draining;
    await expect(RawClient.open(`ws://127.0.0.1:${n.port}/ws?user=late`)).rejects.toBeDefined();
  });
});
