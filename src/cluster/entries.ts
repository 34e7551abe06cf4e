/**
 * A node's entries at the store (presence, registry) live while the node
 * does. These are the three ways they go when it does not: the survivors
 * drop the entries of a node that died or left; a node that starts drops
 * what an earlier life under its id left; and once it has heard the
 * cluster's heartbeats, it drops the entries of nodes that died while no
 * node was there to see it (a whole cluster restarted under new ids).
 */
import type { Logger } from 'pino';
import type { Store } from '../brokers/broker.js';

export class NodeEntries {
  /** Drops under way, so that a node dropped twice at once is one call. */
  private readonly dropping = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  /** Drop what an earlier life of this node, under the same id, left behind. */
  async clearOwn(): Promise<void> {
    await this.store.dropNode(this.nodeId);
  }

  /** Drop every entry of `node`; never rejects (what cannot be dropped now is filtered out on read, and dropped by `dropUnknown` later). */
  drop(node: string): Promise<void> {
    let p = this.dropping.get(node);
    if (!p) {
      p = this.store
        .dropNode(node)
        .then(() => this.log.info({ node }, 'dropped the entries of a node that is gone'))
        .catch((err: unknown) => this.log.warn({ err, node }, 'could not drop the entries of a node that is gone'))
        .finally(() => this.dropping.delete(node));
      this.dropping.set(node, p);
    }
    return p;
  }

  /** Drop the entries of every node with entries that `isAlive` does not know. */
  async dropUnknown(isAlive: (node: string) => boolean): Promise<void> {
    let nodes: string[];
    try {
      nodes = await this.store.nodesWithEntries();
    } catch (err) {
      this.log.warn({ err }, 'could not list the nodes with entries');
      return;
    }
    await Promise.all(nodes.filter((n) => n !== this.nodeId && !isAlive(n)).map((n) => this.drop(n)));
  }
}
