/** Resolves a channel's options from its namespace (the part before the first `:`). */
import { namespaceOf, personalChannelUser } from '../../protocol/index.js';
import type { HistoryPolicy } from '../../brokers/history.js';
import type { NamespaceOptions, NodeOptions } from '../options.js';

export interface ChannelPolicy extends NamespaceOptions {
  namespace: string;
  /** Whether clients may publish here: the namespace's `publish`, or when it says nothing, `clientPublishDefault`. */
  publish: boolean;
  /** The broker history policy, or null when the namespace keeps no history. */
  history: HistoryPolicy | null;
}

export class Namespaces {
  private readonly cache = new Map<string, ChannelPolicy>();

  constructor(private readonly options: Pick<NodeOptions, 'namespaces' | 'defaultNamespace'> & Partial<Pick<NodeOptions, 'insecure'>>) {}

  of(channel: string): ChannelPolicy {
    const name = namespaceOf(channel);
    let policy = this.cache.get(name);
    if (!policy) {
      // Namespaces come from configuration, so the cache is bounded by it plus
      // one entry for every unknown namespace name seen — cap that too.
      // Own properties only: a channel `constructor:x` must not find Object.prototype's.
      const configured = Object.hasOwn(this.options.namespaces, name);
      const ns = configured ? (this.options.namespaces[name] as NamespaceOptions) : this.options.defaultNamespace;
      policy = {
        ...ns,
        namespace: name,
        publish: ns.publish ?? clientPublishDefault(ns, this.options.insecure === true),
        history: ns.historySize > 0 ? { size: ns.historySize, ttlMs: ns.historyTtl * 1000 } : null,
      };
      if (configured || this.cache.size < 1000) this.cache.set(name, policy);
    }
    return policy;
  }

  /** Whether subscribing to and leaving `channel` make `join` and `leave` (its namespace has `joinLeave`; never a personal channel). */
  joinLeave(channel: string): boolean {
    return this.of(channel).joinLeave === true && personalChannelUser(channel) === undefined;
  }
}

/**
 * Whether clients may publish to a namespace that does not say: under
 * `--insecure` (the demo page and the quick start publish and send), or
 * where the publish hook is asked (the backend decides each one); otherwise
 * not (SPEC "Running it": outside `--insecure` only where a namespace allows it).
 */
export function clientPublishDefault(ns: Pick<NamespaceOptions, 'publishHook'>, insecure: boolean): boolean {
  return insecure || ns.publishHook === true;
}
