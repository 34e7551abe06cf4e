/**
 * `join` and `leave` in the event log (`RecordOptions.joinLeave`), against
 * every store that has a log: the in-process bus, a real redis-server, and
 * RabbitMQ (on 127.0.0.1:5672, as `amqp.test.ts`) over that redis-server.
 * Each entry added logs one `join` and each entry removed one `leave`,
 * whatever the node and however often the call is repeated; several nodes
 * dropping a dead node's entries at once log each `leave` once, before the
 * user's `offline`; channels the recording does not name log nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, PresenceItem } from '../../src/brokers/broker.js';
import { EVENT_PARTITIONS, partitionOf, type LoggedEvent } from '../../src/brokers/events.js';
import { AmqpBroker } from '../../src/brokers/amqp/amqp-broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

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

const factories: Record<string, () => Broker[]> = {
  memory: () => {
    const bus = new MemoryBus();
    return Array.from({ length: 3 }, () => new MemoryBroker(bus));
  },
  redis: () => {
    const prefix = `jl${++prefixes}`;
    return Array.from({ length: 3 }, () => new RedisBroker(`${redis.url}/?prefix=${prefix}`));
  },
  rabbitmq: () => {
    const url = `${RABBITMQ}?store=${encodeURIComponent(redis.url)}&prefix=jl${++prefixes}`;
    return Array.from({ length: 3 }, () => new AmqpBroker(url));
  },
};

function item(user: string, session: string, node: string, channel: string): PresenceItem {
  return { channel, entry: { user, session, node } };
}

/** Every event waiting, in partition order (order holds within one). */
async function all(brokers: Broker[]): Promise<LoggedEvent[]> {
  const log = brokers[0]!.events!;
  const out: LoggedEvent[] = [];
  for (let p = 0; p < log.partitions; p++) out.push(...(await log.read(p, 10_000)));
  return out;
}

const line = (e: LoggedEvent): string => [e.type, e.user, e.node, e.session, e.channel].filter((x) => x !== undefined).join(' ');

describe.each(Object.keys(factories))('join and leave in the event log of the %s store', (name) => {
  let brokers: Broker[] = [];
  let dropped: Array<Omit<LoggedEvent, 'id'>> = [];

  const open = async (maxPending = 100_000): Promise<[Broker, Broker, Broker]> => {
    brokers = factories[name]!();
    dropped = [];
    await Promise.all(brokers.map((b, i) => b.start(`n${i + 1}`, noop)));
    for (const b of brokers) b.events!.record({ maxPending, onOverflow: (e) => dropped.push(e), joinLeave: (c) => c.startsWith('room:') });
    return brokers as [Broker, Broker, Broker];
  };
  afterEach(async () => {
    await Promise.all(brokers.map((b) => b.close()));
  });

  it('logs a join per entry added and a leave per entry removed, once, with channel and session', async () => {
    const [n1, n2] = await open();
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'room:1'), item('bob', 'b1', 'n1', 'room:1')]);
    // Put back (a node reasserting its entries): nothing new.
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'room:1')]);
    await n2.store.presenceAdd([item('alice', 'a2', 'n2', 'room:1'), item('alice', 'a2', 'n2', 'room:2')]);
    await n1.store.presenceRemove([item('alice', 'a1', 'n1', 'room:1')]);
    await n1.store.presenceRemove([item('alice', 'a1', 'n1', 'room:1')]);
    // Channels the recording does not name log nothing; the entry is still kept.
    await n1.store.presenceAdd([item('alice', 'a1', 'n1', 'chat:1')]);
    await n1.store.presenceRemove([item('bob', 'b1', 'n1', 'room:1')]);
    const events = await all(brokers);
    const of = (user: string): string[] => events.filter((e) => e.user === user).map(line);
    expect(of('alice')).toEqual(['join alice n1 a1 room:1', 'join alice n2 a2 room:1', 'join alice n2 a2 room:2', 'leave alice n1 a1 room:1']);
    expect(of('bob')).toEqual(['join bob n1 b1 room:1', 'leave bob n1 b1 room:1']);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect((await n2.store.presence('room:1')).map((e) => e.session)).toEqual(['a2']);
    expect((await n2.store.presence('chat:1')).map((e) => e.session)).toEqual(['a1']);
  });

  it('keeps a user online/join/leave/offline in order in one partition', async () => {
    const [n1] = await open();
    await n1.store.presenceAdd([item('carol', 'c1', 'n1', 'user:carol')]);
    await n1.store.presenceAdd([item('carol', 'c1', 'n1', 'room:9')]);
    await n1.store.presenceRemove([item('carol', 'c1', 'n1', 'room:9'), item('carol', 'c1', 'n1', 'user:carol')]);
    const events = await brokers[0]!.events!.read(partitionOf('carol', EVENT_PARTITIONS), 10);
    expect(events.map((e) => `${e.type} ${e.channel ?? '-'}`)).toEqual(['online -', 'join room:9', 'leave room:9', 'offline -']);
  });

  it('logs each leave once when several nodes drop a dead node at once, before the offline of its users', async () => {
    const [n1, n2, n3] = await open();
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    // Personal channels first, as a session opens: a drop in store order would log offline first.
    await n3.store.presenceAdd(users.map((u) => item(u, `${u}-s`, 'n3', `user:${u}`)));
    await n3.store.presenceAdd(users.flatMap((u) => [item(u, `${u}-s`, 'n3', 'room:big'), item(u, `${u}-s`, 'n3', `room:${u}`)]));
    await n1.store.presenceAdd([item('u0', 'u0-here', 'n1', 'room:big')]);
    await Promise.all([n1.store.dropNode('n3'), n2.store.dropNode('n3'), n1.store.dropNode('n3')]);
    const events = (await all(brokers)).filter((e) => e.node === 'n3' && (e.type === 'leave' || e.type === 'offline'));
    for (const u of users) {
      expect(events.filter((e) => e.user === u).map((e) => `${e.type} ${e.channel ?? ''}`).sort(), u).toEqual(['leave room:big', `leave room:${u}`, 'offline '].sort());
      const mine = events.filter((e) => e.user === u);
      expect(mine.at(-1)!.type, u).toBe('offline');
      for (const e of mine.filter((x) => x.type === 'leave')) expect(e.session).toBe(`${u}-s`);
    }
    expect((await n1.store.presence('room:big')).map((e) => e.session)).toEqual(['u0-here']);
  });

  it('drops and reports a join that does not fit a full partition', async () => {
    const [n1] = await open(EVENT_PARTITIONS); // one event per partition
    await n1.store.presenceAdd([item('dave', 'd1', 'n1', 'room:1')]);
    await n1.store.presenceAdd([item('dave', 'd1', 'n1', 'room:2')]);
    expect((await brokers[0]!.events!.read(partitionOf('dave', EVENT_PARTITIONS), 10)).map(line)).toEqual(['join dave n1 d1 room:1']);
    expect(dropped.map((e) => `${e.type} ${e.user} ${e.session} ${e.channel}`)).toEqual(['join dave d1 room:2']);
    // The entry itself is kept.
    expect((await n1.store.presence('room:2')).map((e) => e.session)).toEqual(['d1']);
  });
});
