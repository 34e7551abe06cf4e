/**
 * Idle is idle: once sessions are open and subscribed, a node makes no
 * broker call however long they stay quiet (presence and registry entries
 * live while their node does; nothing refreshes them). Timers are fake, so
 * an hour passes in a moment and any periodic broker work would show.
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { HashRingRouting, InterestRouting, RegistryRouting, type RoutingStrategy } from '../../src/server/routing/strategies.js';
import { counted } from '../helpers/counted-broker.js';

const SESSIONS = 200;
const transport: Transport = { send: () => undefined, close: () => undefined, bufferedAmount: 0 };

let gateway: Gateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  vi.useRealTimers();
});

const ROUTINGS: Array<[string, () => RoutingStrategy]> = [
  ['interest', () => new InterestRouting()],
  ['registry', () => new RegistryRouting()],
  ['hashring', () => new HashRingRouting('n1', 16, 6_000)],
];

it.each(ROUTINGS)('with %s routing, an hour of quiet costs the broker no call, whatever the number of sessions', async (_name, routing) => {
  // setImmediate and nextTick stay real: the memory broker answers through them.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  const bus = new MemoryBus();
  const { broker, calls } = counted(bus);
  // Pings are the one per-session periodic work, and they go to clients, not to the broker; an hour apart here so that no session times out.
  const options = withDefaults({ nodeId: 'n1', logLevel: 'silent', ping: 3600, pongTimeout: 3600 });
  gateway = new Gateway('n1', options, broker, routing(), new Metrics({ node: 'n1' }), pino({ level: 'silent' }));
  await gateway.start();
  const g = gateway;
  const sessions = Array.from({ length: SESSIONS }, (_, i) => g.open({ user: `u${i}`, grants: [], transport }));
  await Promise.all(sessions.map((s) => s.settled));
  await Promise.all(sessions.map((s, i) => g.subscribe(s, `room:${i % 20}`, undefined, () => undefined)));
  // Opening did call the broker: presence entries for every personal channel and room (batched per turn).
  expect(calls.get('presenceAdd')).toBeGreaterThan(0);
  expect(await broker.store.presence('room:0')).toHaveLength(SESSIONS / 20);

  // The routing settles (a hash ring drops the registrations it needed while settling), then nothing more happens.
  await vi.advanceTimersByTimeAsync(60_000);
  calls.clear();
  for (let minute = 0; minute < 60; minute++) await vi.advanceTimersByTimeAsync(60_000);
  expect(Object.fromEntries(calls)).toEqual({});
  expect(g.sessions.size).toBe(SESSIONS);
});
