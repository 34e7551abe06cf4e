/**
 * The classic subscriber of a node in a Redis Cluster: the broadcast and
 * inbox channels, held on one cluster node (S). A classic PUBLISH on
 * another master M reaches S over M's cluster bus link to S. When S
 * restarts, the other masters reconnect those links only after a while (up
 * to the cluster node timeout), and what they publish meanwhile never
 * reaches S although our subscriptions are back. So after every
 * (re)connection this subscriber is in sync only once a probe published on
 * every master has come back through it.
 */
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { LinkHooks } from './link.js';
import { ClassicPubSub } from './pubsub.js';

/** Probes go again to the masters not heard from this often. */
const PROBE_EVERY_MS = 200;

const noop = (): void => undefined;

function keyOf(node: Redis): string {
  return `${node.options.host ?? ''}:${node.options.port ?? ''}`;
}

export class ClusterInbox extends ClassicPubSub {
  /** Masters whose probe came back since the link was last (re)connected. */
  private readonly heard = new Set<string>();
  /** Masters with a probe not answered yet: one at a time each, however long they take. */
  private readonly sending = new Set<string>();
  /** Names the probes of the current connection: answers to earlier ones are stale. */
  private token = '';
  private reached = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  /**
   * @param cluster the command client: its master connections send the probes
   * @param probeChannel a channel of this subscriber's own, for the probes
   */
  constructor(
    private readonly cluster: Cluster,
    conn: Redis,
    private readonly probeChannel: string,
    private readonly hooks: LinkHooks,
    maxBatch?: number,
  ) {
    // The link's events arrive once the connection opens, after this constructor.
    let self: ClusterInbox | undefined;
    const linkHooks: LinkHooks = {
      ...hooks,
      onMessage: (channel, message) => (channel === probeChannel ? self?.probed(message) : hooks.onMessage(channel, message)),
      onChange: () => self?.linkChanged(),
    };
    super(conn, linkHooks, maxBatch, 'inbox subscriber');
    self = this;
    // Wanted from now on: restored with the others on every connection.
    this.link.interest.add(probeChannel).catch(noop);
  }

  /** Subscribed, and every master was heard from over this connection. */
  override get inSync(): boolean {
    return this.reached && this.link.inSync;
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopProbing();
    await super.close();
  }

  private linkChanged(): void {
    if (!this.link.inSync) {
      this.reached = false;
      this.stopProbing();
    } else if (!this.reached && this.token === '') {
      this.token = randomBytes(6).toString('base64url');
      this.heard.clear();
      this.probe();
    }
    this.hooks.onChange();
  }

  /** Publish a probe on every master not heard from yet, and again a little later until all are. */
  private probe(): void {
    this.timer = undefined;
    if (this.closed || this.reached || !this.link.inSync) return;
    for (const master of this.cluster.nodes('master')) {
      const key = keyOf(master);
      if (this.heard.has(key) || this.sending.has(key)) continue;
      this.sending.add(key);
      // A master that cannot take it now fails it (or times it out); the next round tries again.
      master
        .publish(this.probeChannel, `${this.token} ${key}`)
        .catch(noop)
        .finally(() => this.sending.delete(key));
    }
    this.timer = setTimeout(() => this.probe(), PROBE_EVERY_MS);
    this.timer.unref();
  }

  private probed(message: string): void {
    const space = message.indexOf(' ');
    if (this.reached || this.token === '' || message.slice(0, space) !== this.token) return;
    this.heard.add(message.slice(space + 1));
    const masters = this.cluster.nodes('master');
    if (masters.length === 0 || !masters.every((m) => this.heard.has(keyOf(m)))) return;
    this.stopProbing();
    this.reached = true;
    this.hooks.onChange();
  }

  private stopProbing(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.token = '';
  }
}
