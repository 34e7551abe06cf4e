/**
 * Puts the numbered publications that reach this node back in offset order,
 * per channel. Redis numbers them, but each publisher sends its own to
 * RabbitMQ afterwards, so two publishers' offsets 5 and 6 may arrive as 6, 5.
 *
 * A node does not receive every offset of a channel: a `nodes` route reaches
 * only its targets, so "expect last + 1" would wait for (and fetch) what was
 * never meant for it. Instead each publication names its predecessor *on
 * this receiver's path*: the offset of the publication of the same channel
 * routed to this node before it, and when that was stored (`Order`, filled
 * in by the store script). A publication is delivered once its predecessor
 * has been; later ones are held. A predecessor that does not come within
 * `gapMs` is fetched from history (with everything else stored between:
 * harmless to a node, which only passes a channel to its own subscribers),
 * then the held ones follow. Older offsets and duplicates are dropped; a new
 * epoch (history lost, numbering restarted) starts the channel over.
 *
 * Where a channel starts:
 * - `prime(channel, top)` after a binding is in place (subscribe): anything
 *   up to `top` is in history (the node reads it after subscribing), and
 *   everything stored later was sent after the binding, so it arrives.
 * - A channel seen for the first time (broadcast, inbox, or forgotten): its
 *   first publication is delivered at once when its predecessor cannot be
 *   on the way to this node: there is none; or it was stored before the
 *   horizon (`setHorizon`: the server time read after the node's queue and
 *   bindings were in place, so anything stored later was sent after them and
 *   arrives, anything earlier may never); or it was stored long before it
 *   (`idleMs / 2`: this node had delivered it and forgotten the channel,
 *   which takes `idleMs` of silence). Otherwise it waits for the predecessor
 *   like any gap. This is what keeps concurrent first publications on a
 *   broadcast channel in order.
 *
 * Channels are forgotten after `idleMs` without traffic (and the least
 * recently used ones beyond `maxChannels`); `forget` drops what a channel
 * holds when the node loses interest, keeping only its position.
 *
 * The holding, filling and forgetting are the shared channel order
 * (`../channel-order.ts`); this file says what differs for RabbitMQ.
 */
import { ChannelOrder, type ChannelOrderOptions, type FilledRange, type OrderStats } from '../channel-order.js';
import type { BrokerPublication } from '../broker.js';
import type { Order } from './codec.js';

export type { FilledRange };
export type SequencerStats = OrderStats;

/** The channel order's settings RabbitMQ passes on (`maxHeld` defaults to 1000, `idleMs` to 60 000 ms here). */
type Passed = 'deliver' | 'maxHeld' | 'idleMs' | 'maxChannels' | 'maxFills' | 'fillLimit';

export interface SequencerOptions extends Pick<ChannelOrderOptions<Order>, Passed> {
  fill: NonNullable<ChannelOrderOptions<Order>['fill']>;
  onFault(err: Error, where: string): void;
  /** How long a gap may stay open before it is filled from history (default 150 ms). */
  gapMs?: number;
}

/** Epochs a channel remembers as past: their late publications are dropped. */
const RETIRED = 4;

/** The channel order configured for RabbitMQ: predecessors on this node's path, and where a channel starts. */
export class Sequencer {
  private horizon = 0;
  private readonly order: ChannelOrder<Order>;

  constructor(options: SequencerOptions) {
    const idleMs = options.idleMs ?? 60_000;
    const { gapMs, ...passed } = options;
    this.order = new ChannelOrder<Order>({
      ...passed,
      predecessor: (_pub, order) => order.prev,
      starts: (_pub, order) => order.prev === 0 || order.prevAt <= this.horizon || order.at - order.prevAt >= idleMs / 2,
      epochs: { retired: RETIRED, storedAt: (order) => order.at },
      holdMs: gapMs ?? 150,
      maxHeld: options.maxHeld ?? 1000,
      idleMs,
    });
  }

  get stats(): SequencerStats {
    return this.order.stats;
  }

  /**
   * The server time (ms, the store's clock) read once this node's queue and
   * bindings were in place: a predecessor stored before it may never arrive.
   */
  setHorizon(at: number): void {
    this.horizon = Math.max(this.horizon, at);
  }

  /** A numbered publication (offset and epoch set) arrived. */
  push(pub: BrokerPublication, order: Order): void {
    if (pub.offset === undefined || pub.epoch === undefined) return;
    this.order.push(pub, order);
  }

  /**
   * This node now receives every publication of `channel` stored after its
   * top offset was `top` (read after the binding was in place).
   */
  prime(channel: string, top: number, epoch: string | undefined): void {
    this.order.prime(channel, top, epoch);
  }

  /** The node lost interest in `channel`: drop what it holds, keep its position. */
  forget(channel: string): void {
    this.order.forgetHeld(channel);
  }

  close(): void {
    this.order.close();
  }
}
