/**
 * Names of everything the RabbitMQ broker declares, all under one prefix so
 * that several deployments (or tests) share one RabbitMQ:
 *
 * - `<p>.topic` (topic): interest routing; routing key = the channel as one token (`routingKey`).
 * - `<p>.fanout` (fanout): publications routed to every node, and control messages to every node.
 * - `<p>.direct` (direct): node inboxes and control messages to one node; routing key = node id.
 * - `<p>.node.<id>` (queue): one per node, exclusive and auto-delete, bound
 *   to all three (to the topic exchange once per subscribed channel).
 *
 * The exchanges are auto-delete: they go when the last node queue bound to
 * them does, so nothing outlives the cluster (its state is in Redis). Each
 * node queue binds the topic exchange with `anchor`, which no channel maps
 * to, so the exchange lives while any node does even when nobody is
 * subscribed to anything.
 */
import { createHash } from 'node:crypto';

export const DEFAULT_PREFIX = 'sb';

/** A routing key is an AMQP short string: at most 255 bytes. */
const MAX_KEY = 255;
/** Channel names the spec allows; `.` (the topic word separator) is the only one to map. */
const PLAIN = /^[A-Za-z0-9_\-.:@=,]+$/;

export class AmqpNames {
  readonly topic: string;
  readonly fanout: string;
  readonly direct: string;
  /** Binding key of the topic exchange that keeps it alive; never a channel's routing key. */
  readonly anchor = '!anchor';

  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    if (!/^[A-Za-z0-9_\-.:]{1,64}$/.test(prefix)) {
      throw new Error(`RabbitMQ name prefix "${prefix}" must be 1–64 characters of A-Z a-z 0-9 _ - . :`);
    }
    this.topic = `${prefix}.topic`;
    this.fanout = `${prefix}.fanout`;
    this.direct = `${prefix}.direct`;
  }

  /** The queue of one node. */
  queue(nodeId: string): string {
    return `${this.prefix}.node.${nodeId}`;
  }

  /**
   * The channel as one topic word: a valid channel name with `.` written as
   * `~` (no valid name holds a `~`), readable and as long as the name; any
   * other string (too long, or characters outside the spec) as `!` and its
   * SHA-256 in base64url. One-to-one either way, and never `*` or `#`.
   */
  routingKey(channel: string): string {
    if (PLAIN.test(channel) && channel.length <= MAX_KEY) return channel.replace(/\./g, '~');
    return `!${createHash('sha256').update(channel, 'utf8').digest('base64url')}`;
  }
}
