/**
 * Join and leave, end to end: two node processes over a real redis-server,
 * a namespace `room` with `joinLeave` and a namespace `chat` without, and a
 * backend started here for `--webhook`. Subscribers on either node get
 * `join` and `leave` frames when a session on the other subscribes,
 * unsubscribes or disconnects; the webhook gets each `join` and `leave`
 * once, in order per user between `online` and `offline`; a node killed
 * with SIGKILL makes `leave` for its sessions within the detection time,
 * as events and as frames from the survivor.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { api } from '../helpers/api.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { DELIVERY_MARGIN_MS, FAST_DETECTION, WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'join-leave-test-secret-0123456789abcdef';
const DETECTION_MS = FAST_DETECTION.ms;

let redis: RedisProcess;
let receiver: WebhookReceiver;
let a: NodeProcess;
let b: NodeProcess;
const nodes: NodeProcess[] = [];
const clients: RawClient[] = [];

type Member = Extract<ServerFrame, { type: 'join' | 'leave' }>;

const membersOf = (client: RawClient, channel?: string): string[] =>
  client.frames
    .filter((f): f is Member => (f.type === 'join' || f.type === 'leave') && (channel === undefined || f.channel === channel))
    .map((f) => `${f.type} ${f.channel} ${f.user} ${f.session}`);

async function connect(node: NodeProcess, user: string): Promise<RawClient> {
  const client = await RawClient.connect(node.ws(`user=${encodeURIComponent(user)}`));
  clients.push(client);
  return client;
}

async function subscribe(client: RawClient, channel: string): Promise<void> {
  const reply = await client.request({ type: 'subscribe', channel });
  expect(reply).not.toHaveProperty('error');
}

/** What the backend kept for `user` (repeats dropped): `type channel` in order. */
function eventsOf(user: string): string[] {
  const seen = new Set<string>();
  return receiver.accepted().flatMap((e) => {
    if (e.user !== user || seen.has(e.id)) return [];
    seen.add(e.id);
    return [e.channel === undefined ? e.type : `${e.type} ${e.channel}`];
  });
}

beforeAll(async () => {
  redis = await startRedis();
  receiver = await WebhookReceiver.start(SECRET);
  const config = writeConfig({ namespaces: { room: { joinLeave: true, history: { size: 0 } }, chat: {} } });
  const args = ['--config', config, '--broker', redis.url, '--insecure', '--webhook', receiver.url, '--webhook-secret', SECRET, ...FAST_DETECTION.args];
  a = await startNodeProcess('jl-a', args);
  b = await startNodeProcess('jl-b', args);
  nodes.push(a, b);
  for (const n of nodes) {
    await vi.waitFor(async () => expect((await api(n.url(), 'GET', '/api/nodes', undefined, null)).body.nodes).toHaveLength(2), {
      timeout: 10_000,
      interval: 100,
    });
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await receiver?.close();
  await redis?.stop();
}, 30_000);

describe('join and leave', () => {
  it('sends join and leave frames to the subscribers on both nodes, not to the session itself, and none without joinLeave', async () => {
    const watcherB = await connect(b, 'watcher-b');
    const watcherA = await connect(a, 'watcher-a');
    for (const w of [watcherA, watcherB]) {
      await subscribe(w, 'room:1');
      await subscribe(w, 'chat:1');
    }
    const alice = await connect(a, 'alice');
    const session = alice.welcome.session;
    await subscribe(alice, 'chat:1');
    await subscribe(alice, 'room:1');
    const join = `join room:1 alice ${session}`;
    for (const w of [watcherA, watcherB]) await w.waitFor((f) => f.type === 'join' && f.session === session, 1);
    await alice.request({ type: 'unsubscribe', channel: 'room:1' });
    const leave = `leave room:1 alice ${session}`;
    for (const w of [watcherA, watcherB]) await w.waitFor((f) => f.type === 'leave' && f.session === session, 1);
    // Again, and then the connection closes: the second leave comes from the close.
    await subscribe(alice, 'room:1');
    await alice.close();
    for (const w of [watcherA, watcherB]) {
      await w.waitFor((f) => f.type === 'leave' && f.session === session, 2);
      expect(membersOf(w).filter((m) => m.includes(' alice '))).toEqual([join, leave, join, leave]);
      // The chat namespace has no joinLeave: nothing for it, before or after.
      expect(membersOf(w, 'chat:1')).toEqual([]);
    }
    // Each watcher saw the other's join (it subscribed later), never its own.
    expect(membersOf(watcherB).filter((m) => m.includes(' watcher-b '))).toEqual([]);
    expect(membersOf(alice)).toEqual([]);
  });

  it('sends join and leave to the webhook once each, between online and offline, with channel and session', async () => {
    const bob = await connect(a, 'bob');
    await subscribe(bob, 'room:5');
    await subscribe(bob, 'chat:5');
    await bob.request({ type: 'unsubscribe', channel: 'room:5' });
    const bobOnB = await connect(b, 'bob');
    await subscribe(bobOnB, 'room:5');
    await subscribe(bob, 'room:6');
    await bob.close();
    await bobOnB.close();
    await vi.waitFor(() => expect(eventsOf('bob')).toHaveLength(8), { timeout: 5000, interval: 25 });
    const events = eventsOf('bob');
    expect(events[0]).toBe('online');
    expect(events.at(-1)).toBe('offline');
    // Per session and channel, join before leave; the first session's room:5 pair before anything of the second.
    expect(events.slice(1, 3)).toEqual(['join room:5', 'leave room:5']);
    expect(events.slice(3, 7).sort()).toEqual(['join room:5', 'join room:6', 'leave room:5', 'leave room:6']);
    for (const channel of ['room:5', 'room:6']) expect(events.indexOf(`join ${channel}`)).toBeLessThan(events.lastIndexOf(`leave ${channel}`));
    const mine = receiver.accepted().filter((e) => e.user === 'bob' && e.type === 'join' && e.channel === 'room:6');
    expect(mine[0]).toMatchObject({ node: 'jl-a', session: bob.welcome.session });
    // No event for the chat namespace.
    expect(events.some((e) => e.includes('chat:'))).toBe(false);
  });

  it('reports leave for the channels of the sessions of a node killed with SIGKILL, before their offline, within the detection time', async () => {
    // One watcher hears zoe join; the other subscribes after she did (its node reads the members then).
    const early = await connect(b, 'early');
    await subscribe(early, 'room:7');
    const zoe = await connect(a, 'zoe');
    const session = zoe.welcome.session;
    await subscribe(zoe, 'room:7');
    await subscribe(zoe, 'room:8');
    await early.waitFor((f) => f.type === 'join' && f.session === session, 1);
    // zoe's room:8 join must reach b before late subscribes there: a's announcements reach b in order, so wait for a later one.
    const marker = await connect(a, 'marker');
    await subscribe(marker, 'room:7');
    await early.waitFor((f) => f.type === 'join' && f.user === 'marker', 1);
    const late = await connect(b, 'late');
    await subscribe(late, 'room:8');
    await vi.waitFor(() => expect(eventsOf('zoe')).toEqual(['online', 'join room:7', 'join room:8']), { timeout: 5000, interval: 25 });
    const killedAt = Date.now();
    await a.kill();
    await vi.waitFor(() => expect(eventsOf('zoe')).toHaveLength(6), { timeout: DETECTION_MS + DELIVERY_MARGIN_MS + 3000, interval: 25 });
    expect(Date.now() - killedAt).toBeLessThanOrEqual(DETECTION_MS + DELIVERY_MARGIN_MS);
    const events = eventsOf('zoe');
    expect(events.slice(3, 5).sort()).toEqual(['leave room:7', 'leave room:8']);
    expect(events[5]).toBe('offline');
    for (const e of receiver.accepted().filter((x) => x.user === 'zoe' && x.type === 'leave')) {
      expect(e).toMatchObject({ node: 'jl-a', session });
    }
    // The survivor tells its subscribers too, once each.
    await early.waitFor((f) => f.type === 'leave' && f.session === session, 1, DETECTION_MS + 1000);
    await late.waitFor((f) => f.type === 'leave' && f.session === session, 1, DETECTION_MS + 1000);
    expect(membersOf(early, 'room:7').filter((m) => m.includes(' zoe '))).toEqual([`join room:7 zoe ${session}`, `leave room:7 zoe ${session}`]);
    expect(membersOf(late).filter((m) => m.includes(' zoe '))).toEqual([`leave room:8 zoe ${session}`]);
  });
});
