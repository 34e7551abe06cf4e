/**
 * Subscriptions against a scripted `ws` server: resubscribe with `since` on
 * every reconnect, recovered-then-live order, de-duplication, reset on
 * failed recovery, refusals, acks.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient, type ClientOptions, type Publication, type Subscription } from '../../src/client/index.js';
import { FakeServer, type FakeConnection, type Json } from './client-fake-server.js';
import { sleep } from '../helpers/wait.js';

const servers: FakeServer[] = [];
const clients: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const msg = (offset: number, epoch = 'e1', channel = 'room'): Publication => ({ channel, data: `d${offset}`, offset, epoch });

async function connected(opts: Partial<ClientOptions> = {}) {
  const s = await FakeServer.start();
  servers.push(s);
  const client = new SwitchboardClient({ url: s.url, WebSocket, params: { user: 'alice' }, minReconnectDelay: 5, maxReconnectDelay: 20, ...opts });
  clients.push(client);
  const all: Publication[] = [];
  client.on('message', (m) => all.push(m));
  client.connect();
  const conn = await s.connection(0);
  conn.welcome();
  await vi.waitUntil(() => client.state === 'connected', { timeout: 2_000, interval: 5 });
  return { s, client, conn, all };
}

function track(sub: Subscription) {
  const got: unknown[] = [];
  const events: string[] = [];
  sub.on('message', (m) => got.push(m.data));
  sub.on('subscribed', (e) => events.push(`subscribed:${e.wasRecovering}:${e.recovered}`));
  sub.on('reset', () => events.push('reset'));
  sub.on('unsubscribed', (e) => events.push(`unsubscribed:${e.reason}`));
  sub.on('error', (e) => events.push(`error:${e.error.code}`));
  return { got, events };
}

async function answerSubscribe(conn: FakeConnection, result: Json): Promise<Json> {
  const f = await conn.nextOfType('subscribe');
  conn.reply(f, { channel: f.channel, recovered: true, messages: [], ...result });
  return f;
}

describe('client subscriptions', () => {
  it('subscribes once connected, and delivers live messages de-duplicated on the subscription and the client', async () => {
    const s = await FakeServer.start();
    servers.push(s);
    const client = new SwitchboardClient({ url: s.url, WebSocket, params: { user: 'alice' } });
    clients.push(client);
    const sub = client.subscribe('room');
    expect(client.subscribe('room')).toBe(sub);
    expect(client.getSubscription('room')).toBe(sub);
    expect(sub.state).toBe('subscribing');
    const { got, events } = track(sub);
    client.connect();
    const conn = await s.connection(0);
    conn.welcome();
    const f = await answerSubscribe(conn, { offset: 0, epoch: 'e1' });
    expect(f).toEqual({ type: 'subscribe', id: expect.any(Number), channel: 'room' });
    await sub.ready(1000);
    expect(events).toEqual(['subscribed:false:false']);
    for (const o of [1, 2, 2, 1, 3]) conn.message(msg(o));
    await vi.waitUntil(() => got.length === 3, { timeout: 2_000, interval: 5 });
    // Pause, not a wait: duplicates may not follow the three messages.
    await sleep(20);
    expect(got).toEqual(['d1', 'd2', 'd3']);
  });

  it('holds live messages that arrive before the reply and delivers them after the result messages', async () => {
    const { client, conn } = await connected();
    const sub = client.subscribe('room');
    const { got } = track(sub);
    // Recover from a known position: subscribe, receive 1..2, then drop.
    await answerSubscribe(conn, { offset: 0, epoch: 'e1' });
    await sub.ready(1000);
    conn.message(msg(1));
    conn.message(msg(2));
    await vi.waitUntil(() => got.length === 2, { timeout: 2_000, interval: 5 });
    conn.kill();
    const s = servers[0]!;
    const c1 = await s.connection(1);
    c1.welcome();
    const f = await c1.nextOfType('subscribe');
    expect(f.since).toEqual({ offset: 2, epoch: 'e1' });
    // Live 5 and 6 arrive before the reply, which recovers 3..5.
    c1.message(msg(5));
    c1.message(msg(6));
    // Pause, not a wait: live messages ahead of the recovery must be held back.
    await sleep(20);
    expect(got).toEqual(['d1', 'd2']);
    c1.reply(f, { channel: 'room', offset: 5, epoch: 'e1', recovered: true, messages: [msg(3), msg(4), msg(5)] });
    await vi.waitUntil(() => got.length === 6, { timeout: 2_000, interval: 5 });
    c1.message(msg(7));
    await vi.waitUntil(() => got.length === 7, { timeout: 2_000, interval: 5 });
    expect(got).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
    expect(sub.position).toEqual({ offset: 7, epoch: 'e1' });
  });

  it('recovers from the subscribe reply’s position even when no message came', async () => {
    const { client, conn, s } = await connected();
    const sub = client.subscribe('room');
    await answerSubscribe(conn, { offset: 41, epoch: 'e7' });
    await sub.ready(1000);
    conn.kill();
    const c1 = await s.connection(1);
    c1.welcome();
    expect((await c1.nextOfType('subscribe')).since).toEqual({ offset: 41, epoch: 'e7' });
  });

  it('emits reset and subscribed(recovered=false) when recovery fails, then continues from the new position', async () => {
    const { client, conn, s } = await connected();
    const sub = client.subscribe('room');
    const { got, events } = track(sub);
    const resets: unknown[] = [];
    client.on('reset', (e) => resets.push(e));
    await answerSubscribe(conn, { offset: 3, epoch: 'e1' });
    await sub.ready(1000);
    conn.kill();
    const c1 = await s.connection(1);
    c1.welcome();
    const f = await c1.nextOfType('subscribe');
    expect(f.since).toEqual({ offset: 3, epoch: 'e1' });
    c1.reply(f, { channel: 'room', offset: 1, epoch: 'e2', recovered: false, messages: [] });
    await vi.waitUntil(() => events.length === 3, { timeout: 2_000, interval: 5 });
    expect(events).toEqual(['subscribed:false:false', 'reset', 'subscribed:true:false']);
    // The client-level `reset` reports every channel's failed recovery.
    expect(resets).toEqual([{ channel: 'room', offset: 1, epoch: 'e2' }]);
    c1.message(msg(1, 'e2'));
    c1.message(msg(2, 'e2'));
    await vi.waitUntil(() => got.length === 1, { timeout: 2_000, interval: 5 });
    // Pause, not a wait: the message from before the reset may not follow.
    await sleep(20);
    expect(got).toEqual(['d2']);
  });

  it('unsubscribe tells the server, stops delivery and frees the channel', async () => {
    const { client, conn } = await connected();
    const sub = client.subscribe('room');
    const { got, events } = track(sub);
    await answerSubscribe(conn, { offset: 0, epoch: 'e1' });
    await sub.ready(1000);
    sub.unsubscribe();
    expect(sub.state).toBe('unsubscribed');
    expect(client.getSubscription('room')).toBeUndefined();
    const f = await conn.nextOfType('unsubscribe');
    expect(f).toMatchObject({ channel: 'room' });
    conn.reply(f, {});
    conn.message(msg(1));
    // Pause, not a wait: a message after the unsubscribe must not be delivered.
    await sleep(30);
    expect(got).toEqual([]);
    expect(events).toEqual(['subscribed:false:false', 'unsubscribed:unsubscribe']);
    await expect(sub.ready()).rejects.toMatchObject({ code: 'disconnected' });
    // Subscribing again recovers from where it stood.
    sub.subscribe();
    expect((await conn.nextOfType('subscribe')).since).toEqual({ offset: 0, epoch: 'e1' });
  });

  it('ends the subscription on a refusal like forbidden, and retries on unavailable', async () => {
    const { client, conn } = await connected();
    const sub = client.subscribe('secret');
    const { events } = track(sub);
    const f = await conn.nextOfType('subscribe');
    conn.send({ type: 'reply', id: f.id as number, error: { code: 'forbidden', message: 'no' } });
    await vi.waitUntil(() => sub.state === 'unsubscribed', { timeout: 2_000, interval: 5 });
    expect(events).toEqual(['error:forbidden', 'unsubscribed:forbidden']);
    expect(client.getSubscription('secret')).toBeUndefined();

    const busy = client.subscribe('busy');
    const b = track(busy);
    const f1 = await conn.nextOfType('subscribe');
    conn.send({ type: 'reply', id: f1.id as number, error: { code: 'unavailable', message: 'broker down' } });
    const f2 = await conn.nextOfType('subscribe');
    expect(f2.channel).toBe('busy');
    conn.reply(f2, { channel: 'busy', offset: 0, epoch: 'e', recovered: true, messages: [] });
    await busy.ready(1000);
    expect(b.events).toEqual(['error:unavailable', 'subscribed:false:false']);
  });

  it('batches acks: at most one per channel per interval, with the highest offset', async () => {
    const { client, conn } = await connected({ ackInterval: 60 });
    const sub = client.subscribe('room');
    await answerSubscribe(conn, { offset: 0, epoch: 'e1' });
    await sub.ready(1000);
    for (const o of [1, 2, 3]) conn.message(msg(o));
    conn.message({ channel: 'user:alice', data: 'p', offset: 9, epoch: 'pe' });
    const first = await conn.nextOfType('ack', 1000);
    const second = await conn.nextOfType('ack', 1000);
    expect([first, second].sort((a, b) => String(a.channel).localeCompare(String(b.channel)))).toEqual([
      { type: 'ack', channel: 'room', offset: 3 },
      { type: 'ack', channel: 'user:alice', offset: 9 },
    ]);
    // Pause, not a wait: no further ack may be sent for what was acked.
    await sleep(120);
    expect(conn.frames.filter((f) => f.type === 'ack')).toHaveLength(2);
  });

  it('sends no acks with autoAck false', async () => {
    const { client, conn } = await connected({ autoAck: false, ackInterval: 10 });
    const sub = client.subscribe('room');
    await answerSubscribe(conn, { offset: 0, epoch: 'e1' });
    await sub.ready(1000);
    conn.message(msg(1));
    // Pause, not a wait: with autoAck off, no ack may be sent.
    await sleep(60);
    expect(conn.frames.filter((f) => f.type === 'ack')).toHaveLength(0);
  });

  it('caps the messages held while a subscribe reply is in flight', async () => {
    const { client, conn } = await connected({ maxBufferedMessages: 2 });
    const sub = client.subscribe('room');
    const { got, events } = track(sub);
    const f = await conn.nextOfType('subscribe');
    for (const o of [1, 2, 3]) conn.message(msg(o));
    await vi.waitUntil(() => events.includes('error:queue_full'), { timeout: 2_000, interval: 5 });
    conn.reply(f, { channel: 'room', offset: 0, epoch: 'e1', recovered: true, messages: [] });
    await vi.waitUntil(() => got.length === 2, { timeout: 2_000, interval: 5 });
    expect(got).toEqual(['d1', 'd2']);
  });

  it('publishes through the subscription', async () => {
    const { client, conn } = await connected();
    const sub = client.subscribe('room');
    const p = sub.publish({ a: 1 });
    const f = await conn.nextOfType('publish');
    expect(f).toMatchObject({ channel: 'room', data: { a: 1 } });
    conn.reply(f, { offset: 1, epoch: 'e1' });
    await expect(p).resolves.toEqual({ offset: 1, epoch: 'e1' });
  });

  it('emits join and leave frames of its channel while subscribed, and reports a malformed one', async () => {
    const { client, conn } = await connected();
    const sub = client.subscribe('room');
    const other = client.subscribe('other');
    const seen: string[] = [];
    for (const [name, s] of [['room', sub], ['other', other]] as const) {
      s.on('join', (e) => seen.push(`${name} join ${e.channel} ${e.user} ${e.session}`));
      s.on('leave', (e) => seen.push(`${name} leave ${e.channel} ${e.user} ${e.session}`));
    }
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.error.code));
    const f = await conn.nextOfType('subscribe');
    // Before the subscribe reply: not reported (the reply's state comes after it).
    conn.send({ type: 'join', channel: 'room', user: 'early', session: 's0' });
    conn.reply(f, { channel: 'room', offset: 0, epoch: 'e1', recovered: true, messages: [] });
    await sub.ready(1000);
    conn.send({ type: 'join', channel: 'room', user: 'bob', session: 's1' });
    conn.send({ type: 'join', channel: 'nobody', user: 'bob', session: 's1' });
    conn.send({ type: 'leave', channel: 'room', user: 'bob' });
    conn.send({ type: 'leave', channel: 'room', user: 'bob', session: 's1' });
    await vi.waitUntil(() => seen.length === 2, { timeout: 2_000, interval: 5 });
    expect(seen).toEqual(['room join room bob s1', 'room leave room bob s1']);
    expect(errors).toEqual(['bad_frame']);
  });
});
