/**
 * Continuity: each local channel with history is delivered without gaps.
 * A subscriber recovers what it missed from history (a connection without
 * `?since` from the position its device acknowledged); the node keeps the
 * newest offset it dispatched per channel, fills a gap in the live stream
 * from history, and after a broker outage catches every channel up while
 * holding back the live publications that would overtake the older ones.
 * Where history cannot fill the hole, the channel's sessions are closed
 * with 4104 (StateLost) so that they reconnect and learn `recovered: false`.
 */
import type { Logger } from 'pino';
import { CloseCode, encodeMessage, ErrorCode, personalChannel, SwitchboardError } from '../../protocol/index.js';
import type { Publication, StreamPosition, SubscribeResult } from '../../protocol/index.js';
import type { Broker, BrokerPublication } from '../../brokers/broker.js';
import { covers, type HistoryPage, type HistoryQuery } from '../../brokers/history.js';
import type { Metrics } from '../metrics.js';
import { AckWriter } from './acks.js';
import type { Interest } from './interest.js';
import type { Namespaces } from './namespaces.js';
import type { Session } from './session.js';

/** Where a reader resumes: after a position, from the start of retained history ('start': a reader that never acknowledged anything), or live only. */
export type Since = StreamPosition | 'start' | undefined;

/** A subscription's reply, and the recovered messages past what one reply may carry (sent after it, paced by the socket). */
export interface Recovery {
  result: SubscribeResult;
  rest: Publication[];
}

/** Live publications held per channel while it is caught up after a broker outage. */
const MAX_HELD = 10_000;

export class Continuity {
  /** The newest offset this node has dispatched per local channel with history: where a catch-up starts. */
  private readonly positions = new Map<string, { offset: number; epoch: string }>();
  /** Whether the broker was unreachable since the last catch-up. */
  private brokerWasDown = false;
  /**
   * While the broker is down and until each channel's catch-up is done: the
   * live publications of the channels being caught up, held back so that
   * none overtakes the older ones the catch-up reads from history.
   */
  private readonly held = new Map<string, BrokerPublication[]>();
  /** The catch-up of each channel under way: one at a time per channel. */
  private readonly catching = new Map<string, Promise<void>>();
  /** Acknowledged personal-channel positions on their way to the broker. */
  private readonly acks: AckWriter;

  constructor(
    private readonly broker: Broker,
    private readonly namespaces: Namespaces,
    private readonly interest: Interest,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Delivers a publication to the channel's local subscribers. */
    private readonly deliver: (pub: BrokerPublication) => void,
    /** Bytes of recovered messages one reply may carry. */
    private readonly replayBudget: number,
  ) {
    this.acks = new AckWriter(broker, metrics, log);
  }

  /**
   * Where a connection without `?since` starts its personal channel
   * (offline delivery): after the position its device (or user)
   * acknowledged, else at the start of what history retains.
   */
  async resumePoint(channel: string, device: string): Promise<Since> {
    if (!this.namespaces.of(channel).history) return undefined;
    return (await this.broker.store.loadAck(channel, device)) ?? 'start';
  }

  /**
   * An `ack` frame: keep the position of the personal channel for the
   * session's device. Acks of other channels keep nothing (their clients
   * resubscribe with `since`), nor do acks past what this session was sent
   * (left from an earlier epoch, or bogus).
   */
  ack(session: Session, channel: string, offset: number): void {
    if (channel !== personalChannel(session.user)) return;
    const history = this.namespaces.of(channel).history;
    const delivered = session.delivered(channel);
    if (!history || !delivered || offset > delivered.offset) return;
    this.acks.note(channel, session.device, { offset, epoch: delivered.epoch }, history.ttlMs);
  }

  /** Write the positions acknowledged last, before the broker goes (best effort: a write that fails is re-delivered later). */
  async close(): Promise<void> {
    if (this.broker.ready) await this.acks.flush();
    this.acks.stop();
  }

  /** A page of `channel`'s history (the server API's read). */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const policy = this.namespaces.of(channel);
    if (!policy.history) throw new SwitchboardError(ErrorCode.NotFound, `namespace "${policy.namespace}" keeps no history`);
    const history = policy.history;
    try {
      return await this.metrics.brokerCall('history', () => this.broker.store.history(channel, query, history));
    } catch {
      throw new SwitchboardError(ErrorCode.Unavailable, 'broker unavailable');
    }
  }

  /** Read the history a subscriber resuming from `since` needs; undefined when `channel` keeps none. */
  read(channel: string, since: Since): Promise<HistoryPage> | undefined {
    const history = this.namespaces.of(channel).history;
    if (!history) return undefined;
    const query = since === 'start' ? { since: 0, limit: history.size } : since ? { since: since.offset, limit: history.size } : { limit: 0 };
    return this.metrics.brokerCall('history', () => this.broker.store.history(channel, query, history));
  }

  /** The reply to a subscriber resuming from `since`, given the `page` read for it (undefined: no history). */
  recover(channel: string, since: Since, page: HistoryPage | undefined): Recovery {
    if (!page) return { result: { channel, recovered: !since || since === 'start', messages: [] }, rest: [] };
    const recovered =
      !since ||
      since === 'start' ||
      covers(page, since) ||
      // A reader that has seen nothing misses nothing while history still starts at 1, whatever the epoch.
      (since.offset === 0 && page.earliest <= 1);
    let result: SubscribeResult = {
      channel,
      offset: page.offset,
      epoch: page.epoch,
      recovered,
      messages: since && recovered ? page.messages : [],
    };
    if (since && since !== 'start') this.metrics.recoveries.inc({ result: recovered ? 'recovered' : 'failed' });
    if (!this.positions.has(channel)) this.positions.set(channel, { offset: page.offset, epoch: page.epoch });
    const split = splitReplay(result.messages, this.replayBudget);
    if (split.rest.length > 0) {
      // The reply's position is where what it carries ends; the rest follows as `message` frames.
      result = { ...result, messages: split.inline, offset: split.inline.at(-1)?.offset ?? split.rest[0]!.offset! - 1 };
    }
    return { result, rest: split.rest };
  }

  /**
   * Whether `pub` waits instead of being delivered now: its channel is
   * being caught up, or `pub` shows a gap that a catch-up starts to fill.
   */
  withholds(pub: BrokerPublication): boolean {
    const held = this.held.get(pub.channel);
    if (held && pub.offset !== undefined) {
      if (held.length < MAX_HELD) {
        held.push(pub);
        return true;
      }
      // Too much to hold: these sessions reconnect and recover instead.
      this.lost(pub.channel);
      return true;
    }
    if (pub.offset !== undefined && pub.epoch !== undefined && this.interest.holds(pub.channel)) {
      const pos = this.positions.get(pub.channel);
      if (pos && pos.epoch === pub.epoch && pub.offset > pos.offset + 1) {
        // A node with subscribers of a channel receives every one of its
        // publications, so a gap means one was lost on the way (a broker
        // hiccup): fill it from history before going on.
        this.metrics.gaps.inc();
        this.log.warn({ channel: pub.channel, after: pos.offset, got: pub.offset }, 'gap in a channel: filling it from history');
        this.held.set(pub.channel, [pub]);
        void this.catchUpChannel(pub.channel);
        return true;
      }
    }
    return false;
  }

  /** `pub` is being delivered: its offset is the channel's newest dispatched one. */
  advance(pub: BrokerPublication): void {
    if (pub.offset === undefined || pub.epoch === undefined) return;
    const pos = this.positions.get(pub.channel);
    // Moved in place: an object per message, kept until the channel's next
    // one, would outlive young-generation GCs and be collected by the
    // slow old-generation ones.
    if (pos && pos.epoch === pub.epoch) {
      if (pos.offset < pub.offset) pos.offset = pub.offset;
    } else {
      this.positions.set(pub.channel, { offset: pub.offset, epoch: pub.epoch });
    }
  }

  /** The channel's last local subscriber left: nothing to keep for it. */
  forget(channel: string): void {
    this.positions.delete(channel);
  }

  /** The broker became unreachable: from now until its catch-up, a channel's live publications wait (see `catchUp`). */
  brokerLost(): void {
    this.brokerWasDown = true;
    for (const channel of this.positions.keys()) if (!this.held.has(channel)) this.held.set(channel, []);
  }

  /** The broker is reachable again: true when it was unreachable since the last catch-up, so one is due. */
  brokerBack(): boolean {
    const due = this.brokerWasDown;
    this.brokerWasDown = false;
    return due;
  }

  /**
   * After the broker was unreachable, publications may have been missed.
   * Each local channel with history is read from the last dispatched offset
   * and the gap is delivered (sessions drop what they already have). Where
   * the gap cannot be filled (history lost or too short), the channel's
   * sessions are told to reconnect: their recovery then says `recovered: false`.
   */
  async catchUp(): Promise<void> {
    for (const channel of [...this.positions.keys()]) await this.catchUpChannel(channel);
    // Channels that left meanwhile, or joined the list after the loop started.
    for (const channel of [...this.held.keys()]) if (!this.catching.has(channel)) this.release(channel);
  }

  /** Catch `channel` up from history; joins the catch-up already under way for it, if any. */
  private catchUpChannel(channel: string): Promise<void> {
    let running = this.catching.get(channel);
    if (!running) {
      running = this.fill(channel).finally(() => this.catching.delete(channel));
      this.catching.set(channel, running);
    }
    return running;
  }

  /** Deliver what `channel` missed since the last dispatched offset, then what was held meanwhile. */
  private async fill(channel: string): Promise<void> {
    const kept = this.positions.get(channel);
    const policy = this.namespaces.of(channel).history;
    if (!kept || !policy || !this.interest.holds(channel)) {
      this.release(channel);
      return;
    }
    // The position as it was when the catch-up began (deliveries move the kept one in place).
    const pos = { ...kept };
    try {
      const page = await this.metrics.brokerCall('history', () => this.broker.store.history(channel, { since: pos.offset, limit: policy.size }, policy));
      if (!covers(page, pos)) {
        this.lost(channel);
        return;
      }
      const ts = Date.now();
      for (const m of page.messages) this.deliver({ ...m, ts });
    } catch (err) {
      this.log.warn({ err, channel }, 'catch-up failed');
    }
    this.release(channel);
  }

  /** Deliver what was held back for `channel` (sessions drop what the catch-up already gave them), and stop holding. */
  private release(channel: string): void {
    const held = this.held.get(channel);
    this.held.delete(channel);
    for (const pub of held ?? []) this.deliver(pub);
  }

  /** What `channel` missed cannot be delivered: its sessions reconnect and recover (4104). */
  private lost(channel: string): void {
    this.held.delete(channel);
    this.metrics.recoveries.inc({ result: 'failed' });
    for (const s of [...(this.interest.subscribers(channel) ?? [])]) {
      s.disconnect(CloseCode.StateLost, 'messages may have been lost: reconnect to recover', true);
    }
  }
}

/**
 * Recovered messages split into what one reply (or welcome) carries, at
 * most `budget` bytes encoded, and the rest. A backlog larger than a
 * connection may buffer (an offline user's personal channel, say) then
 * reaches a slow client without closing it as a slow consumer.
 */
export function splitReplay(messages: Publication[], budget: number): { inline: Publication[]; rest: Publication[] } {
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) {
    bytes += Buffer.byteLength(encodeMessage(messages[i]!));
    if (bytes > budget) return { inline: messages.slice(0, i), rest: messages.slice(i) };
  }
  return { inline: messages, rest: [] };
}
