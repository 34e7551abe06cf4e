/**
 * How brokers build their `Store` and `Registry` from the objects that keep
 * them: one store from its parts (`composeStore`), a per-node registry bound
 * to this node (`bindRegistry`), and the stand-in for a broker that has no
 * registry (`NO_REGISTRY`).
 */
import type { Registry, Store } from './broker.js';
import { STORE_METHODS } from './broker.js';

/**
 * A registry kept per node id by a backend (`add`, `remove` and `list` take
 * the node id explicitly), bound to this node's id as a `Registry`.
 */
export interface NodeRegistry {
  add(nodeId: string, channels: string[]): Promise<void>;
  remove(nodeId: string, channels: string[]): Promise<void>;
  list(channel: string): Promise<string[]>;
}

/** `registry` as this node's `Registry`; `self` names the node (and throws while the broker is not started). */
export function bindRegistry(registry: NodeRegistry, self: () => string): Registry {
  return {
    register: async (channels) => registry.add(self(), channels),
    unregister: async (channels) => registry.remove(self(), channels),
    registered: (channel) => registry.list(channel),
  };
}

/** The `Store` methods none of `Parts` has. */
type Uncovered<Parts extends ReadonlyArray<object>> = Exclude<keyof Store, Parts[number] extends infer U ? (U extends unknown ? keyof U : never) : never>;

/**
 * One `Store` made of the objects that keep its parts (history, acks,
 * presence), each method taken from the first part that has it, so a new
 * store method is written once, in the part that keeps it. With `check`,
 * it runs before each call, and a call it throws from rejects without
 * reaching the part.
 */
export function composeStore<Parts extends ReadonlyArray<object>>(
  parts: Parts,
  // Parts that leave a method out do not compile: the call then needs the missing names.
  ...[check]: [Uncovered<Parts>] extends [never] ? [check?: () => void] : [missing: Uncovered<Parts>]
): Store {
  const methods = STORE_METHODS.map((name) => {
    const part = parts.find((p) => name in p) as Record<typeof name, (...args: unknown[]) => Promise<unknown>> | undefined;
    if (!part) throw new Error(`no part of the store has ${name}`);
    const method = part[name];
    const call = typeof check === 'function'
      ? async (...args: unknown[]): Promise<unknown> => {
          check();
          return method.apply(part, args);
        }
      : method.bind(part);
    return [name, call];
  });
  return Object.fromEntries(methods) as unknown as Store;
}

/**
 * What the core calls on a broker without a registry. A node refuses at
 * start a routing that registers on such a broker (`routes` lacks `nodes`),
 * so this only guards: each call rejects.
 */
export const NO_REGISTRY: Registry = {
  register: () => Promise.reject(new Error('this broker keeps no registry')),
  unregister: () => Promise.reject(new Error('this broker keeps no registry')),
  registered: () => Promise.reject(new Error('this broker keeps no registry')),
};
