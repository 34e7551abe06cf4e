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
 */
import type { Publication } from '../../protocol/index.js';
import type { BrokerPublication } from '../broker.js';
import type { Order } from './codec.js';

export interface FilledRange {
  /** The channel's epoch now ('' when it has none). */
  epoch: string;
  /** Stored publications in the range asked for, oldest first. */
  messages: Publication[];
}

export interface SequencerOptions {
  /** Hands a publication to the node, in order. */
  deliver(pub: BrokerPublication): void;
  /** Stored publications of `channel` with offsets `from..to` (inclusive, at most `limit`). */
  fill(channel: string, from: number, to: number, limit: number): Promise<FilledRange>;
  /** A gap that could not be filled, or a handler that threw. */
  onFault(err: Error, where: string): void;
  /** How long a gap may stay open before it is filled from history (default 150 ms). */
  gapMs?: number;
  /** Publications held per channel; beyond it the gap is filled at once (default 1000). */
  maxHeld?: number;
  /** A channel without traffic is forgotten after this long (default 60 000 ms). */
  idleMs?: number;
  /** Channels remembered at most (default 100 000). */
  maxChannels?: number;
  /** History reads in flight at most (default 32); other gaps wait their turn. */
  maxFills?: number;
  /** Publications per history read (default 1000). */
  fillLimit?: number;
}

/** A fill is retried this many times when history cannot be read, then the gap is skipped. */
const FILL_ATTEMPTS = 3;
/** Epochs a channel remembers as past: their late publications are dropped. */
const RETIRED = 4;
/** Filled publications need no predecessor. */
const FILLED: Order = { prev: 0, prevAt: 0, at: 0 };

interface Held {
  pub: BrokerPublication;
  offset: number;
  order: Order;
}

interface ChannelState {
  epoch: string | undefined;
  retired: string[];
  /** The last offset delivered (or known not to be needed); undefined until the channel starts. */
  last: number | undefined;
  /** Waiting for their predecessors, by offset. */
  held: Held[];
  timer: ReturnType<typeof setTimeout> | undefined;
  filling: boolean;
  attempts: number;
  /** The latest server store time among the publications seen (for telling epochs apart). */
  seenAt: number;
  /** Bumped when the state is reset: fills begun before are stale. */
  generation: number;
  touched: number;
}

export interface SequencerStats {
  channels: number;
  held: number;
  /** Publications that arrived before their predecessor and waited for it. */
  waited: number;
  /** Publications fetched from history to close a gap. */
  filled: number;
  /** Gaps given up on (history lost, unreachable, or too many held). */
  skipped: number;
  /** Duplicates and publications older than what was delivered. */
  dropped: number;
}

export class Sequencer {
  private readonly states = new Map<string, ChannelState>();
  private horizon = 0;
  private fills = 0;
  private closed = false;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly counts = { waited: 0, filled: 0, skipped: 0, dropped: 0 };
  private readonly gapMs: number;
  private readonly maxHeld: number;
  private readonly idleMs: number;
  private readonly maxChannels: number;
  private readonly maxFills: number;
  private readonly fillLimit: number;

  constructor(private readonly options: SequencerOptions) {
    this.gapMs = options.gapMs ?? 150;
    this.maxHeld = options.maxHeld ?? 1000;
    this.idleMs = options.idleMs ?? 60_000;
    this.maxChannels = options.maxChannels ?? 100_000;
    this.maxFills = options.maxFills ?? 32;
    this.fillLimit = options.fillLimit ?? 1000;
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, this.idleMs / 2));
    this.sweeper.unref();
  }

  get stats(): SequencerStats {
    let held = 0;
    for (const st of this.states.values()) held += st.held.length;
    return { channels: this.states.size, held, ...this.counts };
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
    if (this.closed || pub.offset === undefined || pub.epoch === undefined) return;
    const st = this.state(pub.channel);
    if (st.epoch === undefined) st.epoch = pub.epoch;
    else if (st.epoch !== pub.epoch) {
      // Stored before the newest one seen: a late publication of an older numbering.
      if (st.retired.includes(pub.epoch) || order.at < st.seenAt) return void this.counts.dropped++;
      this.renumber(st, pub.epoch);
    }
    st.seenAt = Math.max(st.seenAt, order.at);
    const offset = pub.offset;
    if (st.last !== undefined && offset <= st.last) return void this.counts.dropped++;
    if (st.held.length === 0 && this.startable(st, order)) {
      st.last = offset;
      this.emit(pub);
      return;
    }
    if (!this.startable(st, order)) this.counts.waited++;
    this.hold(st, { pub, offset, order });
    if (st.held.length > this.maxHeld) {
      if (st.filling) this.release(pub.channel, st, `more than ${this.maxHeld} publications held`);
      else this.gap(pub.channel, st);
      return;
    }
    this.drain(pub.channel, st);
  }

  /**
   * This node now receives every publication of `channel` stored after its
   * top offset was `top` (read after the binding was in place).
   */
  prime(channel: string, top: number, epoch: string | undefined): void {
    if (this.closed) return;
    const st = this.state(channel);
    if (epoch !== undefined && st.epoch !== undefined && st.epoch !== epoch) this.renumber(st, epoch);
    st.epoch ??= epoch;
    st.last = Math.max(st.last ?? 0, top);
    this.drain(channel, st);
  }

  /** The node lost interest in `channel`: drop what it holds, keep its position. */
  forget(channel: string): void {
    const st = this.states.get(channel);
    if (!st) return;
    const top = st.held.at(-1)?.offset;
    if (top !== undefined) st.last = Math.max(st.last ?? 0, top);
    this.reset(st);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const st of this.states.values()) this.reset(st);
    this.states.clear();
  }

  // ---- internals -------------------------------------------------------------

  /** The channel's state, created if new, and marked as the most recently used. */
  private state(channel: string): ChannelState {
    let st = this.states.get(channel);
    if (st) this.states.delete(channel);
    else st = { epoch: undefined, retired: [], last: undefined, held: [], timer: undefined, filling: false, attempts: 0, seenAt: 0, generation: 0, touched: 0 };
    st.touched = Date.now();
    this.states.set(channel, st);
    if (this.states.size > this.maxChannels) this.evict();
    return st;
  }

  /** Whether a publication whose predecessor is `order.prev` may be delivered now. */
  private startable(st: ChannelState, order: Order): boolean {
    if (st.last !== undefined) return order.prev <= st.last;
    return order.prev === 0 || order.prevAt <= this.horizon || order.at - order.prevAt >= this.idleMs / 2;
  }

  private hold(st: ChannelState, h: Held): void {
    let i = st.held.length;
    while (i > 0 && st.held[i - 1]!.offset > h.offset) i--;
    if (i > 0 && st.held[i - 1]!.offset === h.offset) return void this.counts.dropped++;
    st.held.splice(i, 0, h);
  }

  /** Deliver what has become deliverable; keep a timer on what still waits. */
  private drain(channel: string, st: ChannelState): void {
    while (st.held.length > 0) {
      const h = st.held[0]!;
      if (st.last !== undefined && h.offset <= st.last) {
        st.held.shift();
        this.counts.dropped++;
        continue;
      }
      if (!this.startable(st, h.order)) break;
      st.held.shift();
      st.last = h.offset;
      this.emit(h.pub);
    }
    if (st.held.length === 0) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = undefined;
      st.attempts = 0;
    } else if (!st.timer && !st.filling) {
      st.timer = setTimeout(() => this.gap(channel, st), this.gapMs);
    }
  }

  /** The first held publication's predecessor is overdue: read what is missing from history. */
  private gap(channel: string, st: ChannelState): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    const first = st.held[0];
    if (this.closed || st.filling || !first || this.states.get(channel) !== st) return;
    if (this.fills >= this.maxFills) {
      st.timer = setTimeout(() => this.gap(channel, st), this.gapMs);
      return;
    }
    const from = (st.last ?? first.order.prev - 1) + 1;
    const to = first.offset - 1;
    const limit = Math.min(this.fillLimit, to - from + 1);
    const generation = st.generation;
    st.filling = true;
    this.fills++;
    const done = (range: FilledRange | undefined, err?: unknown): void => {
      this.fills--;
      if (this.closed || st.generation !== generation || this.states.get(channel) !== st) return;
      st.filling = false;
      this.filled(channel, st, from, to, limit, range, err);
    };
    this.options.fill(channel, from, to, limit).then(
      (range) => done(range),
      (err: unknown) => done(undefined, err),
    );
  }

  private filled(channel: string, st: ChannelState, from: number, to: number, limit: number, range: FilledRange | undefined, err: unknown): void {
    if (!range) {
      if (++st.attempts < FILL_ATTEMPTS) {
        st.timer = setTimeout(() => this.gap(channel, st), this.gapMs);
        return;
      }
      const why = err instanceof Error ? err.message : String(err);
      return this.release(channel, st, `history unreadable (${why})`);
    }
    if (range.epoch !== st.epoch) return this.release(channel, st, 'its numbering restarted');
    st.attempts = 0;
    for (const m of range.messages) {
      const offset = m.offset;
      if (offset === undefined || offset < from || offset > to || (st.last !== undefined && offset <= st.last)) continue;
      this.counts.filled++;
      this.hold(st, { pub: { ...m, ts: Date.now() }, offset, order: FILLED });
    }
    st.last ??= from - 1;
    this.drain(channel, st);
    const first = st.held[0];
    if (!first || first.offset > to + 1 || this.startable(st, first.order)) return;
    if (range.messages.length >= limit) {
      // A long gap is read page by page.
      if (st.timer) clearTimeout(st.timer);
      st.timer = setTimeout(() => this.gap(channel, st), 0);
      return;
    }
    // History no longer has what is missing (trimmed or expired): skip it.
    this.release(channel, st, `offsets ${(st.last ?? 0) + 1}–${first.order.prev} are not in history`);
  }

  /** Give up on the gap before the first held publication: deliver everything held, in order. */
  private release(channel: string, st: ChannelState, why: string): void {
    const held = st.held;
    if (held.length === 0) return;
    this.counts.skipped++;
    this.options.onFault(new Error(`sequencer: ${channel}: gap skipped, ${why}`), 'sequencer');
    st.held = [];
    for (const h of held) {
      if (st.last !== undefined && h.offset <= st.last) continue;
      st.last = h.offset;
      this.emit(h.pub);
    }
    this.drain(channel, st);
  }

  /** The channel's numbering restarted: what it holds can never be completed; deliver it in order and start over. */
  private renumber(st: ChannelState, epoch: string): void {
    for (const h of st.held) {
      if (st.last !== undefined && h.offset <= st.last) continue;
      st.last = h.offset;
      this.emit(h.pub);
    }
    this.reset(st);
    if (st.epoch !== undefined) st.retired = [st.epoch, ...st.retired].slice(0, RETIRED);
    st.epoch = epoch;
    st.last = 0;
  }

  /** Drop what is held and any fill under way. */
  private reset(st: ChannelState): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    st.held = [];
    st.filling = false;
    st.attempts = 0;
    st.generation++;
  }

  private emit(pub: BrokerPublication): void {
    try {
      this.options.deliver(pub);
    } catch (err) {
      this.options.onFault(err instanceof Error ? err : new Error(String(err)), 'publication handler');
    }
  }

  private sweep(): void {
    const before = Date.now() - this.idleMs;
    for (const [channel, st] of this.states) {
      if (st.touched > before) break;
      if (st.held.length === 0 && !st.filling) this.states.delete(channel);
    }
  }

  private evict(): void {
    for (const [channel, st] of this.states) {
      if (this.states.size <= this.maxChannels) return;
      if (st.held.length === 0 && !st.filling) this.states.delete(channel);
    }
  }
}
