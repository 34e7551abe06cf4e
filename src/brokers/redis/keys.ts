/**
 * Names of everything the Redis broker stores or publishes. Every key and
 * the pub/sub channel of one Switchboard channel carry the hash tag
 * `{<channel>}`, so in a Redis Cluster they all live in one slot: one Lua
 * script can touch them all, and the sharded pub/sub channel is served by
 * the node that holds the keys.
 *
 * A node's index of the entries it holds (`presenceOf`, `registeredBy`)
 * carries the hash tag `{<node id>}` instead: it is read and written with
 * single-key commands only, so its slot need not be any channel's.
 *
 * Publications routed to every node or to node inboxes travel on classic
 * pub/sub channels outside any hash tag (`<prefix>:all`, `<prefix>:in:<node>`):
 * a script may PUBLISH to any classic channel, and Redis Cluster carries
 * those to every cluster node.
 */

export const DEFAULT_PREFIX = 'sb';

export class RedisKeys {
  /** Control channel every node subscribes to. */
  readonly controlAll: string;
  /** Classic pub/sub channel of publications routed to every node. */
  readonly broadcast: string;
  /** Head of every node inbox channel: `inbox(node)` is this plus the node id. */
  readonly inboxHead: string;
  /** Set: the ids of the nodes holding presence or registry entries. */
  readonly nodes: string;
  private readonly channelHead: string;
  private readonly nodeHead: string;

  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    // A brace in the prefix would become the hash tag and break the one-slot rule.
    if (!/^[^{}\s]{1,64}$/.test(prefix)) throw new Error(`Redis key prefix "${prefix}" must be 1–64 characters without braces or spaces`);
    this.controlAll = `${prefix}:ctl`;
    this.broadcast = `${prefix}:all`;
    this.inboxHead = `${prefix}:in:`;
    this.channelHead = `${prefix}:{`;
    this.nodes = `${prefix}:nodes`;
    this.nodeHead = `${prefix}:node:{`;
  }

  /** Hash: `o` (top offset) and `e` (epoch) of a channel's history. */
  meta(channel: string): string {
    return `${this.channelHead}${channel}}:m`;
  }

  /** Stream of the channel's history: entry ID `<offset>-0`, fields `d` (publication JSON), `t` (accept time ms). */
  history(channel: string): string {
    return `${this.channelHead}${channel}}:h`;
  }

  /** The pub/sub (or sharded pub/sub) channel that carries the channel's publications. */
  pubsub(channel: string): string {
    return `${this.channelHead}${channel}}:p`;
  }

  /** Hash: session → presence entry JSON. No expiry: an entry lives until removed or its node is dropped. */
  presence(channel: string): string {
    return `${this.channelHead}${channel}}:s`;
  }

  /** Set: the node ids registered for the channel (registry routing). No expiry, as presence. */
  registry(channel: string): string {
    return `${this.channelHead}${channel}}:n`;
  }

  /**
   * Hash: node id → `<offset>:<store time>` of the last publication routed to
   * that node's inbox (for brokers that order deliveries themselves, see `STORE_ROUTED`).
   */
  prevs(channel: string): string {
    return `${this.channelHead}${channel}}:q`;
  }

  /** String: the result of the publish that used idempotency key `key` on the channel (JSON), until the window ends. */
  once(channel: string, key: string): string {
    return `${this.channelHead}${channel}}:i:${key}`;
  }

  /** String: `<offset>:<epoch>` acknowledged by `reader` on the channel (offline delivery). */
  ack(channel: string, reader: string): string {
    return `${this.channelHead}${channel}}:a:${reader}`;
  }

  /** Set: `<channel>\n<session>` of every presence entry `node` holds (under the node's hash tag), for `dropNode`. */
  presenceOf(node: string): string {
    return `${this.nodeHead}${node}}:s`;
  }

  /** Set: the channels `node` is registered for (under the node's hash tag), for `dropNode`. */
  registeredBy(node: string): string {
    return `${this.nodeHead}${node}}:r`;
  }

  /** Stream: partition `n` of the event log (standalone Redis only, see `events.ts`). */
  events(n: number): string {
    return `${this.prefix}:ev:${n}`;
  }

  /** String: the id of the node delivering partition `n` of the event log, with an expiry. */
  eventLease(n: number): string {
    return `${this.prefix}:ev:${n}:lease`;
  }

  /** Classic pub/sub channel of the publications routed to one node. */
  inbox(nodeId: string): string {
    return `${this.inboxHead}${nodeId}`;
  }

  /** Classic pub/sub channel on which a node in a cluster checks that every master reaches its inbox subscriber. */
  probe(nodeId: string): string {
    return `${this.prefix}:probe:${nodeId}`;
  }

  /** Control channel of one node. */
  controlOf(nodeId: string): string {
    return `${this.controlAll}:${nodeId}`;
  }

  /** The Switchboard channel a pub/sub channel name carries, or undefined when it is not one of ours. */
  channelOf(pubsubName: string): string | undefined {
    if (!pubsubName.startsWith(this.channelHead) || !pubsubName.endsWith('}:p')) return undefined;
    return pubsubName.slice(this.channelHead.length, -3);
  }
}
