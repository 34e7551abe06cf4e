/**
 * Offset order per channel on arrival. A history stream stores a channel's
 * messages in offset order, but a NATS server may republish two of them,
 * stored from two client connections at once, in the other order (seen on
 * 2.9 under load). A message that skips ahead waits here, at most
 * `holdMs`, for the ones before it; one at or below the last passed on (a
 * repeat) is dropped. After the wait the held ones go on in order with the
 * gap left open: the node fills it from history (see the gateway).
 */
import type { BrokerPublication } from '../broker.js';

/** Channels whose last offset is remembered at most; the oldest without held messages are forgotten first. */
const MAX_CHANNELS = 100_000;

interface ChannelOrder {
  epoch: string;
  last: number;
  held: Map<number, BrokerPublication>;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class Reorder {
  private readonly channels = new Map<string, ChannelOrder>();

  constructor(
    private readonly emit: (pub: BrokerPublication) => void,
    private readonly holdMs = 100,
  ) {}

  push(pub: BrokerPublication): void {
    if (pub.offset === undefined || pub.epoch === undefined) return this.emit(pub);
    let order = this.channels.get(pub.channel);
    if (!order || order.epoch !== pub.epoch) {
      if (order) this.forget(pub.channel);
      order = { epoch: pub.epoch, last: pub.offset - 1, held: new Map(), timer: undefined };
      this.remember(pub.channel, order);
    }
    if (pub.offset <= order.last) return;
    if (pub.offset > order.last + 1) {
      order.held.set(pub.offset, pub);
      order.timer ??= setTimeout(() => this.release(order), this.holdMs);
      return;
    }
    this.emit(pub);
    order.last = pub.offset;
    this.drain(order);
  }

  /** Stop tracking `channel` (unsubscribed, or a new epoch), dropping what it held. */
  forget(channel: string): void {
    const order = this.channels.get(channel);
    if (!order) return;
    if (order.timer) clearTimeout(order.timer);
    this.channels.delete(channel);
  }

  /** Drop everything (the broker closed). */
  clear(): void {
    for (const order of this.channels.values()) if (order.timer) clearTimeout(order.timer);
    this.channels.clear();
  }

  private drain(order: ChannelOrder): void {
    for (let next = order.held.get(order.last + 1); next; next = order.held.get(order.last + 1)) {
      order.held.delete(next.offset!);
      this.emit(next);
      order.last = next.offset!;
    }
    if (order.held.size === 0 && order.timer) {
      clearTimeout(order.timer);
      order.timer = undefined;
    }
  }

  /** The wait is over: pass on what is held, in order, over the gap. */
  private release(order: ChannelOrder): void {
    if (order.timer) clearTimeout(order.timer);
    order.timer = undefined;
    for (const offset of [...order.held.keys()].sort((x, y) => x - y)) {
      this.emit(order.held.get(offset)!);
      order.last = offset;
    }
    order.held.clear();
  }

  private remember(channel: string, order: ChannelOrder): void {
    if (this.channels.size >= MAX_CHANNELS) {
      for (const [c, o] of this.channels) {
        if (o.held.size === 0) {
          this.channels.delete(c);
          break;
        }
      }
    }
    this.channels.set(channel, order);
  }
}
