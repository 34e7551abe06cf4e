/**
 * The event log (`Broker.events`), one suite run against every store that
 * has one: the in-process bus, a real redis-server, and RabbitMQ (on
 * 127.0.0.1:5672, as `amqp.test.ts`) over that redis-server as its store. Transitions are
 * logged once however the presence entries come and go, several nodes
 * dropping a dead node's entries at once log one `offline`, the bound
 * drops and reports, and leases give each partition to one node at a time.
 * On the channels the recording names for `join` and `leave`, each entry
 * added logs one `join` and each entry removed or dropped one `leave`, once,
 * before the user's `offline` when its node died.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, PresenceItem } from '../../src/brokers/broker.js';
import { EVENT_PARTITIONS, partitionOf, type EventLog, type LeaseState, type LoggedEvent } from '../../src/brokers/events.js';
import { AmqpBroker } from '../../src/brokers/amqp/amqp-broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

interface Setup {
  /** Brokers on one store, started as nodes `n1`, `n2`, `n3`. */
  brokers: Broker[];
  log: EventLog;
  dropped: Array<Omit<LoggedEvent, 'id'>>;
  close(): Promise<void>;
}

const RABBITMQ = process.env.SWITCHBOARD_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672/';

let redis: RedisProcess;
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

const noop = { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined };

const factories: Record<string, (maxPending: number) => Promise<Setup>> = {
  memory: async (maxPending) => {
    const bus = new MemoryBus();
    return started(Array.from({ length: 3 }, () => new MemoryBroker(bus)), maxPending);
  },
  redis: async (maxPending) => {
    const prefix = `evlog${++prefixes}`;
    return started(Array.from({ length: 3 }, () => new RedisBroker(`${redis.url}/?prefix=${prefix}`)), maxPending);
  },
  rabbitmq: async (maxPending) => {
    const prefix = `evlog${++prefixes}`;
    const url = `${RABBITMQ}?store=${encodeURIComponent(redis.url)}&prefix=${prefix}`;
    return started(Array.from({ length: 3 }, () => new AmqpBroker(url)), maxPending);
  },
};

/** A broker of `name` on a store of its own, started as `n1`, not recording. */
function lone(name: string): Broker {
  const prefix = `evlog${++prefixes}`;
  if (name === 'memory') return new MemoryBroker();
  if (name === 'redis') return new RedisBroker(`${redis.url}/?prefix=${prefix}`);
  return new AmqpBroker(`${RABBITMQ}?store=${encodeURIComponent(redis.url)}&prefix=${prefix}`);
}

async function started(brokers: Broker[], maxPending: number): Promise<Setup> {
  await Promise.all(brokers.map((b, i) => b.start(`n${i + 1}`, noop)));
  const log = brokers[0]!.events!;
  const dropped: Setup['dropped'] = [];
  // Every node of a cluster records; on one store the log is shared, so one call covers the test's nodes.
  // Joins and leaves are logged on `jl:` channels only (the tests of online and offline use others).
  for (const b of brokers) b.events!.record({ maxPending, onOverflow: (e) => dropped.push(e), joinLeave: (c) => c.startsWith('jl:') });
  return { brokers, log, dropped, close: async () => void (await Promise.all(brokers.map((b) => b.close()))) };
}

function item(user: string, session: string, node: string, channel = `user:${user}`): PresenceItem {
  return { channel, entry: { user, session, node } };
}

/** Every event waiting, across partitions, in partition order (order holds within one). */
async function all(log: EventLog): Promise<LoggedEvent[]> {
  const out: LoggedEvent[] = [];
  for (let p = 0; p < log.partitions; p++) out.push(...(await log.read(p, 10_000)));
  return out;
}

function summary(events: LoggedEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.user} ${e.node}${e.session ? ` ${e.session}` : ''}`);
}

describe.each(Object.keys(factories))('the event log of the %s store', (name) => {
  let s: Setup;
  const open = async (maxPending = 100_000): Promise<Setup> => (s = await factories[name]!(maxPending));
  afterEach(async () => s?.close());

  it('logs online at the first entry of a user and offline at the last, once, whatever the node', async () => {
    await open();
    const [n1, n2] = s.brokers as [Broker, Broker];
    await n1.store.presenceAdd([item('alice', 's1', 'n1')]);
    // Put back while it is the only entry (a node reasserting its entries): no transition.
    await n1.store.presenceAdd([item('alice', 's1', 'n1')]);
    await n2.store.presenceAdd([item('alice', 's2', 'n2')]);
    await n1.store.presenceAdd([item('alice', 's1', 'n1')]);
    await n1.store.presenceRemove([item('alice', 's1', 'n1')]);
    await n1.store.presenceRemove([item('alice', 's1', 'n1')]);
    await n2.store.presenceRemove([item('alice', 's2', 'n2')]);
    await n2.store.presenceRemove([item('alice', 's2', 'n2')]);
    // Entries of other channels make no events.
    await n1.store.presenceAdd([item('alice', 's1', 'n1', 'room:1')]);
    const events = await all(s.log);
    expect(summary(events)).toEqual(['online alice n1 s1', 'offline alice n2 s2']);
    expect(new Set(events.map((e) => e.id)).size).toBe(2);
    expect(events[1]!.ts).toBeGreaterThanOrEqual(events[0]!.ts);
    const partitions = Array.from({ length: EVENT_PARTITIONS }, (_, p) => (p === partitionOf('alice', EVENT_PARTITIONS) ? 2 : 0));
    expect(await s.log.backlog()).toEqual({ pending: 2, partitions, oldestTs: events[0]!.ts });
  });

  it('logs one offline when several nodes drop a dead node at once, and none for users with a session elsewhere', async () => {
    await open();
    const [n1, n2, n3] = s.brokers as [Broker, Broker, Broker];
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    await n3.store.presenceAdd(users.flatMap((u) => [item(u, `${u}-a`, 'n3'), item(u, `${u}-b`, 'n3')]));
    await n1.store.presenceAdd([item('u0', 'u0-elsewhere', 'n1')]);
    await Promise.all([n1.store.dropNode('n3'), n2.store.dropNode('n3'), n1.store.dropNode('n3')]);
    const offline = (await all(s.log)).filter((e) => e.type === 'offline');
    expect(offline.map((e) => e.user).sort()).toEqual(users.slice(1).sort());
    for (const e of offline) {
      expect(e.node).toBe('n3');
      expect(e.session).toBeUndefined();
    }
  });

  it('logs nothing before `record` is called', async () => {
    const brokers = [lone(name)];
    await brokers[0]!.start('n1', noop);
    s = { brokers, log: brokers[0]!.events!, dropped: [], close: () => brokers[0]!.close() };
    await brokers[0]!.store.presenceAdd([item('zed', 's1', 'n1')]);
    expect(await s.log.backlog()).toEqual({ pending: 0, partitions: new Array(EVENT_PARTITIONS).fill(0), oldestTs: null });
  });

  it('drops and reports what does not fit a full partition, and keeps what waits', async () => {
    await open(EVENT_PARTITIONS); // one event per partition
    const [n1] = s.brokers as [Broker];
    const partition = partitionOf('p-0', EVENT_PARTITIONS);
    const sameUsers = Array.from({ length: 200 }, (_, i) => `p-${i}`).filter((u) => partitionOf(u, EVENT_PARTITIONS) === partition).slice(0, 3);
    for (const u of sameUsers) await n1.store.presenceAdd([item(u, `${u}-s`, 'n1')]);
    expect(summary(await s.log.read(partition, 10))).toEqual([`online ${sameUsers[0]} n1 ${sameUsers[0]}-s`]);
    expect(s.dropped.map((e) => `${e.type} ${e.user}`)).toEqual(sameUsers.slice(1).map((u) => `online ${u}`));
  });

  it("gives each partition to one node at a time, up to its share, and frees a node's leases on release", async () => {
    await open();
    const half = EVENT_PARTITIONS / 2;
    const count = (states: LeaseState[], state: LeaseState): number => states.filter((x) => x === state).length;
    const first = await s.log.claim('n1', 60_000, half);
    expect([count(first, 'mine'), count(first, 'free')]).toEqual([half, EVENT_PARTITIONS - half]);
    // A node with no room left takes nothing, and sees what is free.
    expect(await s.log.claim('n2', 60_000, 0)).toEqual(first.map((x) => (x === 'mine' ? 'other' : 'free')));
    const second = await s.log.claim('n2', 60_000, EVENT_PARTITIONS);
    second.forEach((state, p) => expect(state).toBe(first[p] === 'mine' ? 'other' : 'mine'));
    // Renewing keeps the same partitions.
    expect(await s.log.claim('n1', 60_000, half)).toEqual(first.map((x) => (x === 'mine' ? 'mine' : 'other')));
    await s.log.release('n1');
    expect(count(await s.log.claim('n2', 60_000, EVENT_PARTITIONS), 'mine')).toBe(EVENT_PARTITIONS);
  });

  it('lets a lease that expires go to another node', async () => {
    await open();
    expect(new Set(await s.log.claim('n1', 150, EVENT_PARTITIONS))).toEqual(new Set(['mine']));
    expect(new Set(await s.log.claim('n2', 60_000, EVENT_PARTITIONS))).toEqual(new Set(['other']));
    await expect.poll(async () => new Set(await s.log.claim('n2', 60_000, EVENT_PARTITIONS)), { timeout: 3000, interval: 50 }).toEqual(new Set(['mine']));
  });

  it('forgets delivered events only for the holder of the partition', async () => {
    await open();
    const [n1] = s.brokers as [Broker];
    await n1.store.presenceAdd([item('bob', 'b1', 'n1')]);
    await n1.store.presenceRemove([item('bob', 'b1', 'n1')]);
    const partition = partitionOf('bob', EVENT_PARTITIONS);
    const events = await s.log.read(partition, 10);
    expect(summary(events)).toEqual(['online bob n1 b1', 'offline bob n1 b1']);
    // Read again: the same events, the same ids (what a retry sends).
    expect(await s.log.read(partition, 10)).toEqual(events);
    await s.log.claim('n1', 60_000, EVENT_PARTITIONS);
    expect(await s.log.settle(partition, 'n2', [events[0]!.id])).toBe(false);
    expect(await s.log.read(partition, 10)).toHaveLength(2);
    expect(await s.log.settle(partition, 'n1', [events[0]!.id])).toBe(true);
    expect(await s.log.read(partition, 10)).toEqual([events[1]]);
  });
});

describe.each(Object.keys(factories))('join and leave in the event log of the %s store', (name) => {
  let s: Setup;
  const open = async (maxPending = 100_000): Promise<[Broker, Broker, Broker]> => {
    s = await factories[name]!(maxPending);
    return s.brokers as [Broker, Broker, Broker];
  };
  afterEach(async () => s?.close());
  const line = (e: LoggedEvent): string => [e.type, e.user, e.node, e.session, e.channel].filter((x) => x !== undefined).join(' ');

  it('logs a join per entry added and a leave per entry removed, once, with channel and session', async () => {
    const [n1, n2] = await open();
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'jl:1'), item('bob', 'b1', 'n1', 'jl:1')]);
    // Put back (a node reasserting its entries): nothing new.
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'jl:1')]);
    await n2.store.presenceAdd([item('alice', 'a2', 'n2', 'jl:1'), item('alice', 'a2', 'n2', 'jl:2')]);
    await n1.store.presenceRemove([item('alice', 'a1', 'n1', 'jl:1')]);
    await n1.store.presenceRemove([item('alice', 'a1', 'n1', 'jl:1')]);
    // Channels the recording does not name log nothing; the entry is still kept.
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'chat:1')]);
    await n1.store.presenceRemove([item('bob', 'b1', 'n1', 'jl:1')]);
    const events = await all(s.log);
    const of = (user: string): string[] => events.filter((e) => e.user === user).map(line);
    expect(of('alice')).toEqual(['join alice n1 a1 jl:1', 'join alice n2 a2 jl:1', 'join alice n2 a2 jl:2', 'leave alice n1 a1 jl:1']);
    expect(of('bob')).toEqual(['join bob n1 b1 jl:1', 'leave bob n1 b1 jl:1']);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect((await n2.store.presence('jl:1')).map((e) => e.session)).toEqual(['a2']);
    expect((await n2.store.presence('chat:1')).map((e) => e.session)).toEqual(['a1']);
  });

  it('keeps online, join, leave and offline of a user in order in its partition', async () => {
    const [n1] = await open();
    await n1.store.presenceAdd([item('carol', 'c1', 'n1')]);
    await n1.store.presenceAdd([item('carol', 'c1', 'n1', 'jl:9')]);
    await n1.store.presenceRemove([item('carol', 'c1', 'n1', 'jl:9'), item('carol', 'c1', 'n1')]);
    const events = await s.log.read(partitionOf('carol', EVENT_PARTITIONS), 10);
    expect(events.map((e) => `${e.type} ${e.channel ?? '-'}`)).toEqual(['online -', 'join jl:9', 'leave jl:9', 'offline -']);
  });

  it('logs each leave once when several nodes drop a dead node at once, before the offline of its users', async () => {
    const [n1, n2, n3] = await open();
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    // Personal channels first, as a session opens: a drop in store order would log offline first.
    await n3.store.presenceAdd(users.map((u) => item(u, `${u}-s`, 'n3')));
    await n3.store.presenceAdd(users.flatMap((u) => [item(u, `${u}-s`, 'n3', 'jl:big'), item(u, `${u}-s`, 'n3', `jl:${u}`)]));
    await n1.store.presenceAdd([item('u0', 'u0-here', 'n1', 'jl:big')]);
    await Promise.all([n1.store.dropNode('n3'), n2.store.dropNode('n3'), n1.store.dropNode('n3')]);
    const events = (await all(s.log)).filter((e) => e.node === 'n3' && (e.type === 'leave' || e.type === 'offline'));
    for (const u of users) {
      const mine = events.filter((e) => e.user === u);
      expect(mine.map((e) => `${e.type} ${e.channel ?? ''}`).sort(), u).toEqual(['leave jl:big', `leave jl:${u}`, 'offline '].sort());
      expect(mine.at(-1)!.type, u).toBe('offline');
      for (const e of mine.filter((x) => x.type === 'leave')) expect(e.session).toBe(`${u}-s`);
    }
    expect((await n1.store.presence('jl:big')).map((e) => e.session)).toEqual(['u0-here']);
  });

  it('drops and reports a join that does not fit a full partition', async () => {
    const [n1] = await open(EVENT_PARTITIONS); // one event per partition
    await n1.store.presenceAdd([item('dave', 'd1', 'n1', 'jl:1')]);
    await n1.store.presenceAdd([item('dave', 'd1', 'n1', 'jl:2')]);
    expect((await s.log.read(partitionOf('dave', EVENT_PARTITIONS), 10)).map(line)).toEqual(['join dave n1 d1 jl:1']);
    expect(s.dropped.map((e) => `${e.type} ${e.user} ${e.session} ${e.channel}`)).toEqual(['join dave d1 jl:2']);
    // The entry itself is kept.
    expect((await n1.store.presence('jl:2')).map((e) => e.session)).toEqual(['d1']);
  });
});
