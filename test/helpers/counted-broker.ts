/**
 * A memory broker that counts every call made to its transport, store and
 * registry, by method name (the items of each store call too), for tests of
 * how much a node asks of its broker.
 */
import { REGISTRY_METHODS, STORE_METHODS, type Broker, type Registry, type Store } from '../../src/brokers/broker.js';
import { MemoryBroker, type MemoryBus } from '../../src/brokers/memory/memory-broker.js';

const TRANSPORT_METHODS = ['subscribe', 'unsubscribe', 'publish', 'sendControl'] as const;

export interface CountedBroker {
  broker: Broker;
  /** Calls by method name. */
  calls: Map<string, number>;
  /** The first argument of each call by method name (the items of `presenceAdd`, …). */
  args: Map<string, unknown[]>;
}

export function counted(bus: MemoryBus): CountedBroker {
  const inner = new MemoryBroker(bus);
  const calls = new Map<string, number>();
  const args = new Map<string, unknown[]>();
  const wrap = <T extends object>(target: T, names: readonly string[]): T =>
    new Proxy(target, {
      get(t, key, receiver) {
        const value: unknown = Reflect.get(t, key, receiver);
        if (typeof key !== 'string' || !names.includes(key) || typeof value !== 'function') return value;
        return (...a: unknown[]) => {
          calls.set(key, (calls.get(key) ?? 0) + 1);
          args.set(key, [...(args.get(key) ?? []), a[0]]);
          return (value as (...x: unknown[]) => unknown).apply(t, a);
        };
      },
    });
  const store = wrap<Store>(inner.store, STORE_METHODS);
  const registry = wrap<Registry>(inner.registry, REGISTRY_METHODS);
  const broker = new Proxy(wrap<Broker>(inner, TRANSPORT_METHODS), {
    get: (t, key, receiver) => (key === 'store' ? store : key === 'registry' ? registry : Reflect.get(t, key, receiver)),
  });
  return { broker, calls, args };
}
