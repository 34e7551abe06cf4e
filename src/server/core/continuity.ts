/**
 * Continuity: each local channel with history is delivered without gaps.
 * A subscriber recovers what it missed from history (a connection without
 * `?since` from the position its device acknowledged); the node keeps the
 * newest offset it dispatched per channel, fills a gap in the live stream
 * from history, and after a broker outage catches every channel up while
 * holding back the live publications that would overtake the older ones
 * (the shared channel order, `brokers/channel-order.ts`, does the holding
 * and filling). Where history cannot fill the hole, the channel's sessions
 * are closed with 4104 (StateLost) so that they reconnect and learn
 * `recovered: false`.
 */
import type { Logger } from 'pino';
import { CloseCode, encodeMessage, ErrorCode, personalChannel, SwitchboardError } from '../../protocol/index.js';
import type { Publication, StreamPosition, SubscribeResult } from '../../protocol/index.js';
import type { Broker, BrokerPublication } from '../../brokers/broker.js';
import { ChannelOrder, type FilledRange } from '../../brokers/channel-order.js';
import { newEpoch } from '../../brokers/epoch.js';
import { covers, type HistoryPage, type HistoryQuery } from '../../brokers/history.js';
import type { Metrics } from '../metrics.js';
import { AckWriter } from './acks.js';
import type { Interest } from './interest.js';
import type { Namespaces } from './namespaces.js';
import type { Session } from './session.js';

/** Where a reader resumes: after a position, from the start of retained history ('start': a reader that never acknowledged anything), or live only. */
export type Since = StreamPosition | 'start' | undefined;

/**
 * Where a subscriber starts: where it says (`Since`), or, for a personal
 * channel opened without `?since`, after the position its device
 * acknowledged (from the start of retained history when none is kept):
 * offline delivery.
 */
export type From = Since | { readonly resume: string };

/** What a subscriber's history read found: where it resumed, and the page (none: the channel keeps no history). */
export interface Read {
  since: Since;
  page: HistoryPage | undefined;
}

/** A subscription's reply, and the recovered messages past what one reply may carry (sent after it, paced by the socket). */
export interface Recovery {
  result: SubscribeResult;
  rest: Publication[];
  /** The recovered messages' size, encoded: what the replay costs the connection's budget. */
  bytes: number;
}

/** Live publications held per channel while it is caught up after a broker outage. */
const MAX_HELD = 10_000;

export class Continuity {
  /**
   * The newest offset this node has dispatched per local channel with
   * history (where a catch-up starts), and the live publications held back
   * while a gap is filled or, after a broker outage, the channel caught up:
   * none overtakes the older ones read from history.
   */
  private readonly order: ChannelOrder;
  /** Whether the broker was unreachable since the last catch-up. */
  private brokerWasDown = false;
  /** Acknowledged personal-channel positions on their way to the broker. */
  private readonly acks: AckWriter;
  /** The catch-up under way, if any (`catchUp`). */
  private catching: Promise<void> = Promise.resolve();

  constructor(
    private readonly broker: Broker,
    private readonly namespaces: Namespaces,
    private readonly interest: Interest,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Delivers a publication to the channel's local subscribers. */
    deliver: (pub: BrokerPublication) => void,
    /** Bytes of recovered messages one reply may carry. */
    private readonly replayBudget: number,
  ) {
    this.acks = new AckWriter(broker, metrics, log);
    this.order = new ChannelOrder({
      deliver,
      // A node with subscribers of a channel receives every one of its publications.
      predecessor: (pub) => pub.offset! - 1,
      fill: (channel, from, _to, limit) => this.missed(channel, from, limit),
      lost: (channel) => this.lost(channel),
      onGap: (channel, after, got) => {
        // One was lost on the way (a broker hiccup): it is filled from history at once.
        this.metrics.gaps.inc();
        this.log.warn({ channel, after, got }, 'gap in a channel: filling it from history');
      },
      onFault: (err, where) => this.log.warn({ err }, where === 'channel order' ? 'catch-up failed' : `${where} failed`),
      holdMs: 0,
      maxHeld: MAX_HELD,
      maxChannels: Infinity,
      maxFills: Infinity,
      fillLimit: Infinity,
      fillAttempts: 1,
    });
  }

  /** Channels whose position is kept. */
  get channels(): number {
    return this.order.size;
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
    this.order.close();
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

  /** Whether subscribers of `channel` read history (its namespace keeps some). */
  reads(channel: string): boolean {
    return this.namespaces.of(channel).history !== undefined;
  }

  /**
   * Read the history a subscriber starting `from` there needs: after its
   * position, or (`resume`) after what its device acknowledged, read with
   * that position in one store call.
   */
  async read(channel: string, from: From): Promise<Read> {
    const history = this.namespaces.of(channel).history;
    const resume = typeof from === 'object' && 'resume' in from ? from.resume : undefined;
    const since = resume === undefined ? (from as Since) : undefined;
    if (!history) return { since, page: undefined };
    const store = this.broker.store;
    if (resume !== undefined) {
      const { ack, page } = await this.metrics.brokerCall('history', () => store.resume(channel, resume, history));
      return { since: ack ?? 'start', page };
    }
    const query = since === 'start' ? { since: 0, limit: history.size } : since ? { since: since.offset, limit: history.size } : { limit: 0 };
    return { since, page: await this.metrics.brokerCall('history', () => store.history(channel, query, history)) };
  }

  /** The reply to a subscriber resuming from `since`, given the `page` read for it (undefined: no history). */
  recover(channel: string, since: Since, page: HistoryPage | undefined): Recovery {
    if (!page) return { result: { channel, recovered: !since || since === 'start', messages: [] }, rest: [], bytes: 0 };
    const recovered =
      !since ||
      since === 'start' ||
      covers(page, since) ||
      // A reader that has seen nothing misses nothing while history still starts at 1, whatever the epoch.
      (since.offset === 0 && page.earliest <= 1);
    let result: SubscribeResult = {
      channel,
      offset: page.offset,
      // A channel not numbered yet (reads create nothing): a position no store keeps, at offset 0,
      // from which the client recovers under whatever epoch the first publish starts (see above).
      epoch: page.epoch || newEpoch(),
      recovered,
      messages: since && recovered ? page.messages : [],
    };
    if (since && since !== 'start') this.metrics.recoveries.inc({ result: recovered ? 'recovered' : 'failed' });
    this.order.start(channel, page.offset, page.epoch || undefined);
    const split = splitReplay(result.messages, this.replayBudget);
    if (split.rest.length > 0) {
      // The reply's position is where what it carries ends; the rest follows as `message` frames.
      result = { ...result, messages: split.inline, offset: split.inline.at(-1)?.offset ?? split.rest[0]!.offset! - 1 };
    }
    return { result, rest: split.rest, bytes: split.bytes };
  }

  /**
   * Whether continuity takes `pub` over: a numbered publication of a local
   * channel is delivered through the channel order (now, or once what it
   * follows is); the others are the caller's to deliver.
   */
  takes(pub: BrokerPublication): boolean {
    if (pub.offset === undefined || pub.epoch === undefined || !this.interest.holds(pub.channel)) return false;
    this.order.push(pub);
    return true;
  }

  /** The channel's last local subscriber left: nothing to keep for it. */
  forget(channel: string): void {
    this.order.forget(channel);
  }

  /** The broker became unreachable: from now until its catch-up, a channel's live publications wait (see `catchUp`). */
  brokerLost(): void {
    this.brokerWasDown = true;
    this.order.suspend();
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
  catchUp(): Promise<void> {
    // One at a time: a second one (the broker came back, and this node was swept) waits for the first.
    const run = this.catching.then(() => this.order.catchUp());
    this.catching = run.catch(() => undefined);
    return run;
  }

  /**
   * What `channel` missed from offset `from` on, as one history read; marked
   * trimmed where history no longer covers it (the epoch is checked by the order).
   */
  private async missed(channel: string, from: number, limit: number): Promise<FilledRange> {
    const policy = this.namespaces.of(channel).history;
    if (!policy || !this.interest.holds(channel)) throw new Error(`${channel} keeps no history here`);
    const page = await this.metrics.brokerCall('history', () => this.broker.store.history(channel, { since: from - 1, limit: Math.min(limit, policy.size) }, policy));
    return { epoch: page.epoch, messages: page.messages, trimmed: !covers(page, { offset: from - 1, epoch: page.epoch }) };
  }

  /** What `channel` missed cannot be delivered: its sessions reconnect and recover (4104). */
  private lost(channel: string): void {
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
export function splitReplay(messages: Publication[], budget: number): { inline: Publication[]; rest: Publication[]; bytes: number } {
  let bytes = 0;
  let split = messages.length;
  for (let i = 0; i < messages.length; i++) {
    bytes += Buffer.byteLength(encodeMessage(messages[i]!));
    if (bytes > budget && split === messages.length) split = i;
  }
  return split === messages.length ? { inline: messages, rest: [], bytes } : { inline: messages.slice(0, split), rest: messages.slice(split), bytes };
}
