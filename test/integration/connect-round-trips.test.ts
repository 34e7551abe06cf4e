/**
 * What a connect asks of Redis, counted by Redis itself (`INFO stats`): the
 * sessions that open in one turn of the event loop share their round trips
 * (their commands go out in one pipelined write, read by Redis in one
 * go), so a burst of connects costs a few reads, not a few per session; and
 * an idle node sends Redis nothing however many sessions it holds. And how
 * long a connect waits for Redis, through a proxy that delays every chunk:
 * one round trip, its offline messages recovered.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisBroker } from '../../src/brokers/redis/redis-broker.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Session, Transport } from '../../src/server/core/session.js';
import type { WelcomeFrame } from '../../src/protocol/index.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { InterestRouting, RegistryRouting } from '../../src/server/routing/strategies.js';
import { redisCommand, startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sleep } from '../helpers/wait.js';

const SESSIONS = 50;
const transport: Transport = { send: () => undefined, close: () => undefined, bufferedAmount: 0 };

let redis: RedisProcess;
let gateway: Gateway;

beforeAll(async () => {
  redis = await startRedis();
  // No health-check pings: every read Redis counts below is the gateway's.
  const broker = new RedisBroker(redis.url, { healthCheckMs: 0 });
  gateway = new Gateway('n1', withDefaults({ nodeId: 'n1', logLevel: 'silent' }), broker, new InterestRouting(), new Metrics({ node: 'n1' }), pino({ level: 'silent' }));
  await gateway.start();
});

afterAll(async () => {
  await gateway?.close();
  await redis?.stop();
});

/** Reads Redis has done from its clients' sockets, and commands it has run. */
async function counters(): Promise<{ reads: number; commands: number }> {
  const text = await redisCommand(redis.port, ['INFO', 'stats']);
  const field = (name: string): number => Number(new RegExp(`${name}:(\\d+)`).exec(text)?.[1]);
  return { reads: field('total_reads_processed'), commands: field('total_commands_processed') };
}

it(`opens ${SESSIONS} sessions arriving in one turn with a few Redis reads, not a few per session`, async () => {
  const before = await counters();
  // Each upgrade completes in a callback of its own, as the sockets of one poll phase do: the
  // microtasks run between them, so without sharing each session's commands would go out alone.
  const sessions = await Promise.all(
    Array.from({ length: SESSIONS }, (_, i) => new Promise<Session>((resolve) => setImmediate(() => resolve(gateway.open({ user: `u${i}`, grants: [], transport }))))),
  );
  await Promise.all(sessions.map((s) => s.settled));
  for (const s of sessions) expect(s.channels.size).toBe(1);
  const after = await counters();
  const reads = after.reads - before.reads;
  const commands = after.commands - before.commands;
  console.log(`${SESSIONS} sessions opened in one turn: ${commands} Redis commands in ${reads} reads`);
  // Each session: a subscription, its acknowledged position, its presence entry and a history read.
  expect(commands).toBeGreaterThanOrEqual(4 * SESSIONS);
  // The subscriptions in one write, the positions and presence entries in one, the history reads in one
  // (Redis reads a large write in parts of 16 KiB), and the INFO of `counters`: not one or more per session.
  expect(reads).toBeLessThanOrEqual(SESSIONS / 4);
});

it('sends Redis nothing while the sessions sit idle', async () => {
  const before = await counters();
  // Pause, not a wait: the window in which nothing may happen.
  await sleep(1_500);
  const after = await counters();
  // The INFO that read `before` is the only command.
  expect(after.commands - before.commands).toBe(1);
});

it.each([
  ['interest', 'subscription', () => new InterestRouting()],
  ['registry', 'registry entry', () => new RegistryRouting()],
])('opens a session in one Redis round trip under %s routing: %s, presence, acknowledged position and offline messages together', async (_routing, _what, routing) => {
  const DELAY_MS = 60;
  const proxy = await startTcpProxy(redis.port, '127.0.0.1', DELAY_MS);
  const far = new RedisBroker(`redis://127.0.0.1:${proxy.port}`, { healthCheckMs: 0 });
  const slow = new Gateway('n2', withDefaults({ nodeId: 'n2', logLevel: 'silent' }), far, routing(), new Metrics({ node: 'n2' }), pino({ level: 'silent' }));
  try {
    await slow.start();
    // Warm: the scripts loaded, so that no NOSCRIPT costs a round trip below.
    const warm = slow.open({ user: 'warm', grants: [], transport });
    await warm.settled;
    // Offline messages for device d1 of user r1: three published, the first acknowledged.
    await redisCommand(redis.port, ['DEL', 'sb:{user:r1}:m', 'sb:{user:r1}:h']);
    for (const data of ['one', 'two', 'three']) await gateway.publish('user:r1', data);
    await redisCommand(redis.port, ['SET', 'sb:{user:r1}:a:d1', `1:${(await gateway.history('user:r1', { limit: 0 })).epoch}`, 'PX', '60000']);

    const round = 2 * DELAY_MS;
    const welcomes: Array<{ frame: WelcomeFrame; ms: number }> = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const welcomed = new Promise<WelcomeFrame>((resolve) => {
        const t: Transport = { send: (data) => typeof data === 'string' && data.includes('"welcome"') && resolve(JSON.parse(data) as WelcomeFrame), close: () => undefined, bufferedAmount: 0 };
        slow.open({ user: 'r1', device: 'd1', grants: [], transport: t });
      });
      const frame = await welcomed;
      welcomes.push({ frame, ms: performance.now() - started });
      // The next connect opens a channel this node no longer holds.
      for (const s of slow.sessionsOf('r1')) s.disconnect(1000, 'bye', true);
      await sleep(3 * round);
    }
    console.log(`connect through a ${round} ms round trip: welcome after ${welcomes.map((w) => w.ms.toFixed(0)).join(', ')} ms`);
    for (const { frame, ms } of welcomes) {
      expect(frame.recovered).toBe(true);
      expect(frame.messages.map((m) => m.data)).toEqual(['two', 'three']);
      expect(ms).toBeGreaterThanOrEqual(round);
      // Never more than two round trips: when Redis runs the read before the SUBSCRIBE it is made again.
      expect(ms).toBeLessThan(2.6 * round);
    }
    // One round trip and the proxy's scheduling (two would be 2 × 120 ms); the second read is the rare case.
    expect(welcomes.filter((w) => w.ms < 1.6 * round).length).toBeGreaterThanOrEqual(4);
  } finally {
    await slow.close();
    await proxy.close();
  }
});
