/**
 * Delivers each channel's numbered publications in offset order. Every
 * publication names its predecessor (a function of the publication, given
 * by the user: `offset - 1` where a node receives all of a channel, or the
 * previous one on this node's path); it is delivered once the predecessor
 * has been, and held until then. A predecessor that does not come within
 * `holdMs` is filled from history through `fill` (with everything else
 * stored between), then the held ones follow. Without `fill`, or where
 * history no longer has what is missing, the held ones go on over the gap;
 * a user with `lost` instead drops them and forgets the channel (its
 * readers then recover on their own). Duplicates and offsets older than
 * what was delivered are dropped.
 *
 * When the source of publications goes away for a while, `suspend` holds
 * every known channel's publications until `catchUp` has read from history
 * what each missed since its position.
 *
 * Used by the NATS broker (republished messages that overtake each other),
 * the RabbitMQ broker (publishers that send in another order than the store
 * numbered) and the gateway (a publication lost on the way, a broker outage).
 */
import type { Publication } from '../protocol/index.js';
import type { BrokerPublication } from './broker.js';
import { moreOf, newState, slim, type ChannelState, type Held } from './channel-state.js';

export interface FilledRange {
  /** The channel's epoch now ('' when it has none). */
  epoch: string;
  /** Stored publications in the range asked for, oldest first. */
  messages: Publication[];
  /** History no longer holds the start of the range (trimmed, expired or lost): the gap cannot be filled. */
  trimmed?: boolean;
}

/** How a channel meets a publication of another epoch when old epochs are told apart by store time. */
export interface EpochRules<M> {
  /** Epochs a channel remembers as past: their late publications are dropped. */
  retired: number;
  /** When `pub` was stored (the store's clock): one of another epoch stored before the newest seen is late. */
  storedAt(meta: M): number;
}

export interface ChannelOrderOptions<M> {
  /** Hands a publication on, in order. */
  deliver(pub: BrokerPublication): void;
  /** The offset of the publication that comes before `pub` (0: none). */
  predecessor(pub: BrokerPublication, meta: M): number;
  /** Whether a channel's first publication (or its first after being forgotten) goes on without its predecessor (default: yes). */
  starts?(pub: BrokerPublication, meta: M): boolean;
  /** Stored publications of `channel`, offsets `from..to` (inclusive, at most `limit`; `to` Infinity for a catch-up); without it a gap is passed over. */
  fill?(channel: string, from: number, to: number, limit: number): Promise<FilledRange>;
  /** A gap history cannot fill (or too many held): instead of passing over it, drop what is held and forget the channel. */
  lost?(channel: string, why: string): void;
  /** A gap is being filled: offsets after `after` are missing, `next` arrived. */
  onGap?(channel: string, after: number, next: number): void;
  /** A gap skipped, or a handler that threw. */
  onFault?(err: Error, where: string): void;
  /**
   * A new epoch (the numbering restarted). Without rules, what is held is
   * dropped and the channel starts over as if seen first; with them, what
   * is held is delivered, the channel counts from 0, and late publications
   * of older epochs are dropped.
   */
  epochs?: EpochRules<M>;
  /** How long a gap may stay open before it is filled (or passed over). */
  holdMs: number;
  /** Publications held per channel; beyond it the gap is filled at once (default: no bound). */
  maxHeld?: number;
  /** A channel without traffic is forgotten after this long (default: never). */
  idleMs?: number;
  /** Channels remembered at most; the least recently used without held ones are forgotten first (default 100 000). */
  maxChannels?: number;
  /** History reads in flight at most (default 32); other gaps wait their turn. */
  maxFills?: number;
  /** Publications per history read (default 1000). */
  fillLimit?: number;
  /** Reads of a gap before it is passed over when history cannot be read (default 3). */
  fillAttempts?: number;
}

export interface OrderStats {
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

export class ChannelOrder<M = void> {
  private readonly states = new Map<string, ChannelState<M>>();
  private fills = 0;
  private closed = false;
  private readonly sweeper: ReturnType<typeof setInterval> | undefined;
  private readonly counts = { waited: 0, filled: 0, skipped: 0, dropped: 0 };
  private readonly maxHeld: number;
  private readonly maxChannels: number;
  private readonly maxFills: number;
  private readonly fillLimit: number;
  private readonly fillAttempts: number;
  /** Whether channels are kept in the order of their last use (for forgetting idle or surplus ones). */
  private readonly lru: boolean;
  /** Whether a channel's `More` is kept for good (it then holds what must outlast a gap: epochs or last use). */
  private readonly lasting: boolean;

  constructor(private readonly options: ChannelOrderOptions<M>) {
    this.maxHeld = options.maxHeld ?? Infinity;
    this.maxChannels = options.maxChannels ?? 100_000;
    this.maxFills = options.maxFills ?? 32;
    this.fillLimit = options.fillLimit ?? 1000;
    this.fillAttempts = options.fillAttempts ?? 3;
    this.lru = options.idleMs !== undefined || this.maxChannels !== Infinity;
    this.lasting = this.lru || options.epochs !== undefined;
    const idleMs = options.idleMs;
    if (idleMs !== undefined) {
      this.sweeper = setInterval(() => this.prune((st) => (st.more?.touched ?? 0) <= Date.now() - idleMs), Math.max(10, idleMs / 2));
      this.sweeper.unref();
    }
  }

  /** Channels remembered. */
  get size(): number {
    return this.states.size;
  }

  get stats(): OrderStats {
    let held = 0;
    for (const st of this.states.values()) held += st.more?.held.length ?? 0;
    return { channels: this.states.size, held, ...this.counts };
  }

  /** A publication arrived; one without offset or epoch has no order to keep and goes on at once. */
  push(pub: BrokerPublication, meta: M): void {
    if (this.closed) return;
    if (pub.offset === undefined || pub.epoch === undefined) return this.emit(pub);
    let st = this.state(pub.channel);
    const epochs = this.options.epochs;
    if (st.epoch === undefined) st.epoch = pub.epoch;
    else if (st.epoch !== pub.epoch) {
      // While suspended, or while what it missed is being read, the old numbering stays: the read finds it gone.
      if (!epochs && !st.more?.suspended && !st.more?.filling) {
        this.forget(pub.channel);
        st = this.state(pub.channel);
        st.epoch = pub.epoch;
      } else if (epochs) {
        // Stored before the newest one seen: a late publication of an older numbering.
        const more = moreOf(st);
        if (more.retired.includes(pub.epoch) || epochs.storedAt(meta) < more.seenAt) return void this.counts.dropped++;
        this.renumber(st, pub.epoch, epochs.retired);
      }
    }
    if (epochs) {
      const more = moreOf(st);
      more.seenAt = Math.max(more.seenAt, epochs.storedAt(meta));
    }
    const offset = pub.offset;
    if (st.last !== undefined && offset <= st.last) return void this.counts.dropped++;
    const startable = this.startable(st, pub, meta, false);
    if (startable && (!st.more || (st.more.held.length === 0 && !st.more.suspended))) {
      st.last = offset;
      this.emit(pub);
      return;
    }
    if (!startable) this.counts.waited++;
    const more = moreOf(st);
    this.hold(st, { pub, offset, meta, filled: false });
    if (more.held.length > this.maxHeld) {
      if (more.filling || more.suspended) this.unfillable(pub.channel, st, `more than ${this.maxHeld} publications held`);
      else this.gap(pub.channel, st);
      return;
    }
    this.drain(pub.channel, st);
  }

  /** Where `channel` starts when it is not known yet: as `prime`. */
  start(channel: string, top: number, epoch: string | undefined): void {
    if (!this.states.has(channel)) this.prime(channel, top, epoch);
  }

  /** Everything of `channel` up to `top` is accounted for (read from history, say): what follows may go on. */
  prime(channel: string, top: number, epoch: string | undefined): void {
    if (this.closed) return;
    const st = this.state(channel);
    if (epoch !== undefined && st.epoch !== undefined && st.epoch !== epoch) this.renumber(st, epoch, this.options.epochs?.retired ?? 0);
    st.epoch ??= epoch;
    st.last = Math.max(st.last ?? 0, top);
    this.drain(channel, st);
  }

  /** Drop what `channel` holds, keeping its position. */
  forgetHeld(channel: string): void {
    const st = this.states.get(channel);
    if (!st) return;
    const top = st.more?.held.at(-1)?.offset;
    if (top !== undefined) st.last = Math.max(st.last ?? 0, top);
    this.reset(st);
  }

  /** Drop everything of `channel`, its position too: its next publication starts it over. */
  forget(channel: string): void {
    const st = this.states.get(channel);
    if (!st) return;
    this.reset(st);
    this.states.delete(channel);
  }

  /** The source went away: hold every publication of the channels known now until `catchUp`. */
  suspend(): void {
    for (const st of this.states.values()) moreOf(st).suspended = true;
  }

  /** Read what each known channel missed since its position, deliver it and then what was held: one channel at a time. */
  async catchUp(): Promise<void> {
    for (const [channel, st] of [...this.states]) {
      if (this.closed) return;
      if (this.states.get(channel) !== st) continue;
      const more = st.more;
      if (more) more.suspended = false;
      if (more?.filling) await more.filling;
      else if (st.last === undefined || !this.options.fill) this.drain(channel, st);
      else await this.read(channel, st, st.last + 1, Infinity);
    }
  }

  /** Drop everything (the owner closed). */
  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const st of this.states.values()) this.reset(st);
    this.states.clear();
  }

  // ---- internals -------------------------------------------------------------

  /** The channel's state, created if new, and marked as the most recently used. */
  private state(channel: string): ChannelState<M> {
    let st = this.states.get(channel);
    if (st && !this.lru) return st;
    if (st) this.states.delete(channel);
    else st = newState();
    if (this.lru) moreOf(st).touched = Date.now();
    this.states.set(channel, st);
    if (this.states.size > this.maxChannels) this.prune(() => this.states.size > this.maxChannels);
    return st;
  }

  /** Whether `pub` may be delivered now (one read from history needs no predecessor). */
  private startable(st: ChannelState<M>, pub: BrokerPublication, meta: M | undefined, filled: boolean): boolean {
    if (filled) return true;
    if (st.last !== undefined) return this.options.predecessor(pub, meta as M) <= st.last;
    return this.options.starts?.(pub, meta as M) ?? true;
  }

  private hold(st: ChannelState<M>, h: Held<M>): void {
    const held = moreOf(st).held;
    let i = held.length;
    while (i > 0 && held[i - 1]!.offset > h.offset) i--;
    if (i > 0 && held[i - 1]!.offset === h.offset) return void this.counts.dropped++;
    held.splice(i, 0, h);
  }

  /** Deliver what has become deliverable; keep a timer on what still waits. */
  private drain(channel: string, st: ChannelState<M>): void {
    const more = st.more;
    if (!more || more.suspended) return;
    while (more.held.length > 0) {
      const h = more.held[0]!;
      if (st.last !== undefined && h.offset <= st.last) {
        more.held.shift();
        this.counts.dropped++;
        continue;
      }
      if (!this.startable(st, h.pub, h.meta, h.filled)) break;
      more.held.shift();
      st.last = h.offset;
      this.emit(h.pub);
    }
    if (more.held.length === 0) {
      if (more.timer) clearTimeout(more.timer);
      more.timer = undefined;
      more.attempts = 0;
      slim(st, this.lasting);
    } else if (!more.timer && !more.filling) {
      more.timer = setTimeout(() => this.gap(channel, st), this.options.holdMs);
    }
  }

  /** The first held publication's predecessor is overdue: read what is missing from history, or pass over it. */
  private gap(channel: string, st: ChannelState<M>): void {
    const more = st.more;
    if (!more) return;
    if (more.timer) clearTimeout(more.timer);
    more.timer = undefined;
    const first = more.held[0];
    if (this.closed || more.filling || more.suspended || !first || this.states.get(channel) !== st) return;
    if (!this.options.fill) return this.release(channel, st);
    if (this.fills >= this.maxFills) {
      more.timer = setTimeout(() => this.gap(channel, st), this.options.holdMs);
      return;
    }
    const from = (st.last ?? this.predecessorOf(first) - 1) + 1;
    if (more.attempts === 0) this.options.onGap?.(channel, from - 1, first.offset);
    void this.read(channel, st, from, first.offset - 1);
  }

  /** Read `from..to` of `channel` from history and go on with what it gives. */
  private read(channel: string, st: ChannelState<M>, from: number, to: number): Promise<void> {
    const more = moreOf(st);
    if (more.timer) clearTimeout(more.timer);
    more.timer = undefined;
    const limit = Math.min(this.fillLimit, to - from + 1);
    this.fills++;
    const done = (range: FilledRange | undefined, err?: unknown): void => {
      this.fills--;
      // A reset since dropped this read: it is stale.
      if (this.closed || st.more?.filling !== filling || this.states.get(channel) !== st) return;
      st.more.filling = undefined;
      this.filled(channel, st, from, to, limit, range, err);
    };
    const filling: Promise<void> = this.options.fill!(channel, from, to, limit).then(
      (range) => done(range),
      (err: unknown) => done(undefined, err),
    );
    more.filling = filling;
    return filling;
  }

  private filled(channel: string, st: ChannelState<M>, from: number, to: number, limit: number, range: FilledRange | undefined, err: unknown): void {
    const more = moreOf(st);
    if (!range) {
      if (++more.attempts < this.fillAttempts) {
        more.timer = setTimeout(() => this.gap(channel, st), this.options.holdMs);
        return;
      }
      const why = err instanceof Error ? err.message : String(err);
      return this.release(channel, st, `history unreadable (${why})`);
    }
    // A channel that started without numbering (nothing published, nothing delivered) takes the first it finds.
    if (st.epoch === undefined && !st.last) st.epoch = range.epoch || undefined;
    else if (range.epoch !== st.epoch) return this.unfillable(channel, st, 'its numbering restarted');
    if (range.trimmed) return this.unfillable(channel, st, `offsets from ${from} are not in history`);
    more.attempts = 0;
    for (const m of range.messages) {
      const offset = m.offset;
      if (offset === undefined || offset < from || offset > to || (st.last !== undefined && offset <= st.last)) continue;
      this.counts.filled++;
      this.hold(st, { pub: { ...m, ts: Date.now() }, offset, meta: undefined, filled: true });
    }
    st.last ??= from - 1;
    this.drain(channel, st);
    const first = st.more?.held[0];
    // After a catch-up, what is still missing is a gap like any other (`drain` set its timer).
    if (!first || to === Infinity || first.offset > to + 1 || this.startable(st, first.pub, first.meta, first.filled)) return;
    if (range.messages.length >= limit) {
      // A long gap is read page by page.
      const rest = moreOf(st);
      if (rest.timer) clearTimeout(rest.timer);
      rest.timer = setTimeout(() => this.gap(channel, st), 0);
      return;
    }
    // History no longer has what is missing (trimmed or expired).
    this.unfillable(channel, st, `offsets ${(st.last ?? 0) + 1}–${this.predecessorOf(first)} are not in history`);
  }

  /** The gap cannot be filled: passed over, or for a user with `lost`, the channel is dropped. */
  private unfillable(channel: string, st: ChannelState<M>, why: string): void {
    if (!this.options.lost) return this.release(channel, st, why);
    this.counts.skipped++;
    this.forget(channel);
    this.options.lost(channel, why);
  }

  /** Give up on the gap before the first held publication: deliver everything held, in order (`why` says why, worth a fault). */
  private release(channel: string, st: ChannelState<M>, why?: string): void {
    const more = st.more;
    const held = more?.held;
    if (why !== undefined) this.options.onFault?.(new Error(`channel order: ${channel}: gap skipped, ${why}`), 'channel order');
    if (!more || !held?.length) return;
    this.counts.skipped++;
    more.held = [];
    this.flush(st, held);
    this.drain(channel, st);
  }

  /** The channel's numbering restarted: what it holds can never be completed; deliver it in order and start over. */
  private renumber(st: ChannelState<M>, epoch: string, retired: number): void {
    if (st.more) this.flush(st, st.more.held);
    this.reset(st);
    if (st.epoch !== undefined && retired > 0) {
      const more = moreOf(st);
      more.retired = [st.epoch, ...more.retired].slice(0, retired);
    }
    st.epoch = epoch;
    st.last = 0;
  }

  /** Deliver `held` in order, over any gaps. */
  private flush(st: ChannelState<M>, held: Array<Held<M>>): void {
    for (const h of held) {
      if (st.last !== undefined && h.offset <= st.last) continue;
      st.last = h.offset;
      this.emit(h.pub);
    }
  }

  /** Drop what is held and any fill under way. */
  private reset(st: ChannelState<M>): void {
    const more = st.more;
    if (!more) return;
    if (more.timer) clearTimeout(more.timer);
    more.timer = undefined;
    more.held = [];
    more.filling = undefined;
    more.attempts = 0;
    more.suspended = false;
    slim(st, this.lasting);
  }

  private predecessorOf(h: Held<M>): number {
    return h.filled ? h.offset - 1 : this.options.predecessor(h.pub, h.meta as M);
  }

  private emit(pub: BrokerPublication): void {
    try {
      this.options.deliver(pub);
    } catch (err) {
      this.options.onFault?.(err instanceof Error ? err : new Error(String(err)), 'publication handler');
    }
  }

  /** Forget channels without held ones, least recently used first, while `more` says so. */
  private prune(more: (st: ChannelState<M>) => boolean): void {
    for (const [channel, st] of this.states) {
      if (!more(st)) return;
      if (!st.more?.held.length && !st.more?.filling) this.states.delete(channel);
    }
  }
}
