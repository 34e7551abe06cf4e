/**
 * Idle is idle: once sessions are open and subscribed, a node makes no
 * broker call however long they stay quiet (presence and registry entries
 * live while their node does; nothing refreshes them). Timers are fake, so
 * an hour passes in a moment and any periodic broker work would show.
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { STORE_METHODS, REGISTRY_METHODS, type Broker, type Registry, type Store } from '../../src/brokers/broker.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Gateway } from '../../src/server/core/gateway.js';
import type { Transport } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { HashRingRouting, InterestRouting, RegistryRouting, type RoutingStrategy } from '../../src/server/routing/strategies.js';

const SESSIONS = 200;
const TRANSPORT_METHODS = ['subscribe', 'unsubscribe', 'publish', 'sendControl'] as const;

/** A memory broker that counts every call the gateway makes to its transport, store and registry. */
function counted(bus: MemoryBus): { broker: Broker; calls: Map<string, number> } {
  const inner = new MemoryBroker(bus);
  const calls = new Map<string, number>();
  const count = (name: string): void => void calls.set(name, (calls.get(name) ?? 0) + 1);
  const wrap = <T extends object>(target: T, names: readonly string[]): T =>
    new Proxy(target, {
      get(t, key, receiver) {
        const value: unknown = Reflect.get(t, key, receiver);
        if (typeof key !== 'string' || !names.includes(key) || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          count(key);
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const store = wrap<Store>(inner.store, STORE_METHODS);
  const registry = wrap<Registry>(inner.registry, REGISTRY_METHODS);
  const broker = new Proxy(wrap<Broker>(inner, TRANSPORT_METHODS), {
    get: (t, key, receiver) => (key === 'store' ? store : key === 'registry' ? registry : Reflect.get(t, key, receiver)),
  });
  return { broker, calls };
}

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
  // Opening did call the broker: presence entries for every personal channel and room.
  expect(calls.get('presenceAdd')).toBe(2 * SESSIONS);

  // The routing settles (a hash ring drops the registrations it needed while settling), then nothing more happens.
  await vi.advanceTimersByTimeAsync(60_000);
  calls.clear();
  for (let minute = 0; minute < 60; minute++) await vi.advanceTimersByTimeAsync(60_000);
  expect(Object.fromEntries(calls)).toEqual({});
  expect(g.sessions.size).toBe(SESSIONS);
});
