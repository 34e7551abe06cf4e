/**
 * Channels with history: numbering, storing and reading back, on the
 * streams of `streams.ts`.
 *
 * A channel's numbering is its last stored message: offset and epoch travel
 * in its headers. To publish, a node sends offset `last + 1` with
 * `Nats-Expected-Last-Subject-Sequence: <sequence of that last message>`
 * (0: none) and a message id naming that slot (see `after`), so the server
 * stores it only if nothing was stored on the channel since; otherwise it
 * answers "wrong last sequence" (or "duplicate") and the node reads the
 * last message again and retries. Stored messages are numbered
 * 1, 2, 3… without gaps, the server republishes them in that order, and
 * every node receives each channel in offset order. A node sends its own
 * publications of one channel one after another (a queue per channel), so
 * those it was asked to publish in a row keep their order too, and it keeps
 * the last (sequence, offset, epoch) it saw per channel, from its publishes,
 * reads and deliveries, to get most publishes right the first time.
 *
 * When the history stream holds nothing for the channel (the TTL dropped it
 * all, or it never had anything), the numbering comes from the position
 * mirror, which keeps each channel's last message for 24 hours: offsets go
 * on under the same epoch, as with the Redis broker. Only if the mirror has
 * nothing either (never used, or idle for 24 hours) does the numbering
 * restart, with a new epoch. A channel read before its first publication
 * gets an epoch marker (offset 0, empty body, never delivered), stored the
 * same compare-and-set way, so every node, and then the first publication,
 * use the epoch the first reader was told.
 */
import { backoffDelay } from '../../shared/backoff.js';
import { sleep } from '../../shared/time.js';
import { newEpoch } from '../epoch.js';
import type { PublishResult, Publication } from '../../protocol/index.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
import type { Store } from '../broker.js';
import { decodeStored, numberingOf, publicationHeaders, type Numbering } from './codec.js';
import type { NatsLink } from './link.js';
import type { NatsNames } from './names.js';
import { getMessage, readMessages, type Stored } from './reader.js';
import { apiCode, type NatsStreams, type PolicyStreams } from './streams.js';

/** JetStream: `Nats-Expected-Last-Subject-Sequence` did not match. */
const WRONG_LAST_SEQUENCE = 10071;
/** Tries of one publish against other nodes publishing on the same channel. */
const MAX_ATTEMPTS = 100;
/** Channels whose last position a node remembers. */
const MAX_HEADS = 10_000;
/** Reads of one history page at most, while the stream changes under it (or a replica lags). */
const MAX_READS = 5;
/** Before reading a page again because a replica lagged, this long times the attempt (ms). */
const LAG_PAUSE_MS = 5;
/** How long a read waits for the position mirror to catch up before the numbering restarts. */
const MIRROR_WAIT_MS = 1_000;

/** A channel's last stored message: its stream sequence (0: none stored) and numbering. */
interface Head extends Numbering {
  seq: number;
}


/**
 * The conditions of storing a message right after the one at `seq` on
 * `subject` (0: on an empty subject): the expected last sequence, and a
 * message id naming that slot. A clustered (R3) nats-server 2.9 checks the
 * expected sequence against what it has applied, not what it is still
 * replicating, so two publishers can both pass; the id makes the second a
 * duplicate (the server stages ids before replicating), which is refused
 * like a collision. An id is remembered for the duplicate window (at most
 * the TTL): a slot of an empty subject comes again only after everything
 * stored on it expired, so later than that.
 */
function after(subject: string, seq: number): { msgID: string; expect: { lastSubjectSequence: number } } {
  return { msgID: `${subject.slice(subject.lastIndexOf('.') + 1)}:${seq}`, expect: { lastSubjectSequence: seq } };
}

const noop = (): void => undefined;

export class NatsHistory implements Pick<Store, 'history'> {
  /** Key `<stream>\n<channel>`, oldest first (a map keeps insertion order). */
  private readonly heads = new Map<string, Head>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly link: () => NatsLink,
    private readonly names: NatsNames,
    private readonly streams: NatsStreams,
    private readonly fault: (err: Error, where: string) => void,
  ) {}

  /** Number, store and (by the server's republish) deliver a publication. */
  async publish(channel: string, stored: string, ts: number, policy: HistoryPolicy, toAll: boolean): Promise<PublishResult> {
    const streams = await this.ensure(policy);
    const key = `${streams.history}\n${channel}`;
    const subject = this.names.historySubject(policy, channel);
    return this.serialize(key, async () => {
      const deadline = Date.now() + this.link().tuning.requestTimeoutMs;
      let head = this.heads.get(key) ?? (await this.head(streams, subject));
      for (let attempt = 1; ; attempt++) {
        const next: Numbering = { offset: head.offset + 1, epoch: head.epoch };
        const link = this.link();
        link.check();
        try {
          const ack = await link.js.publish(subject, stored, {
            headers: publicationHeaders(ts, next, toAll),
            ...after(subject, head.seq),
            timeout: link.tuning.requestTimeoutMs,
          });
          if (!ack.duplicate) {
            this.remember(key, { seq: ack.seq, ...next });
            return next;
          }
          this.heads.delete(key);
        } catch (err) {
          this.heads.delete(key);
          if (apiCode(err) !== WRONG_LAST_SEQUENCE) throw this.failed(err, policy);
        }
        if (attempt >= MAX_ATTEMPTS || Date.now() >= deadline) {
          throw new Error(`publish on ${channel}: other publishers kept winning (${attempt} tries)`);
        }
        // Another node stored first: spread the retries of nodes that collided.
        if (attempt > 1) await sleep(backoffDelay(attempt - 1, 2, 20));
        head = await this.head(streams, subject);
      }
    });
  }

  /** See `Store.history`. */
  async history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage> {
    const streams = await this.ensure(policy);
    const key = `${streams.history}\n${channel}`;
    const subject = this.names.historySubject(policy, channel);
    for (let attempt = 0; attempt < MAX_READS; attempt++) {
      const [last, first] = await Promise.all([
        getMessage(this.link(), streams.history, { last: subject }),
        getMessage(this.link(), streams.history, { next: subject, seq: 0 }),
      ]);
      if (!last || !first) {
        // Stored or dropped between the two reads: look again.
        if (last || first) continue;
        // A read stores nothing: a channel never numbered answers an epoch-less page until its first publish.
        const head = await this.kept(streams, subject);
        return head ? { offset: head.offset, epoch: head.epoch, earliest: head.offset + 1, messages: [] } : { offset: 0, epoch: '', earliest: 1, messages: [] };
      }
      const top = numberingOf(last.headers);
      const bottom = numberingOf(first.headers);
      if (!top || !bottom) throw new Error(`the history of ${channel} holds a message without numbering (sequence ${top ? first.seq : last.seq})`);
      this.remember(key, { seq: last.seq, ...top });
      // A marker (offset 0) is followed by offset 1.
      const earliest = Math.min(Math.max(1, bottom.offset), top.offset + 1);
      const page: HistoryPage = { offset: top.offset, epoch: top.epoch, earliest, messages: [] };
      const limit = Math.max(0, Math.floor(query.limit));
      const since = query.since === undefined || !Number.isFinite(query.since) ? undefined : Math.floor(query.since);
      const from = since === undefined ? Math.max(earliest, top.offset - limit + 1) : Math.max(earliest, since + 1);
      const to = Math.min(top.offset, from + limit - 1);
      if (limit === 0 || from > to) return page;

      const found =
        from === top.offset
          ? [last]
          : await readMessages(this.link(), {
              stream: streams.history,
              filter: subject,
              from: first.seq,
              max: to - earliest + 2,
              stop: (m) => m.seq >= last.seq || (numberingOf(m.headers)?.offset ?? 0) >= to,
            });
      page.messages = this.publications(found, top.epoch, from, to);
      // The newest ones not there yet: on a cluster the read went to a replica that had not applied
      // what the last-message read saw (they are stored, offsets have no gaps). Read again.
      if ((page.messages.at(-1)?.offset ?? from - 1) < to && attempt < MAX_READS - 1) {
        await sleep(LAG_PAUSE_MS * (attempt + 1));
        continue;
      }
      // Dropped by the TTL while being read: the page must not claim them.
      if (page.messages[0]?.offset !== from) page.earliest = Math.max(earliest, page.messages[0]?.offset ?? top.offset + 1);
      return page;
    }
    throw new Error(`the history of ${channel} kept changing while being read`);
  }

  /** A publication delivered from a history stream: remember its position. */
  observe(stream: string, channel: string, seq: number, numbering: Numbering): void {
    const key = `${stream}\n${channel}`;
    const known = this.heads.get(key);
    if (known && known.seq >= seq) return;
    // Only channels this node publishes on are worth a place.
    if (known) this.remember(key, { seq, ...numbering });
  }

  private ensure(policy: HistoryPolicy): Promise<PolicyStreams> {
    this.link().check();
    return this.streams.ensure(policy);
  }

  private publications(found: Stored[], epoch: string, from: number, to: number): Publication[] {
    const out: Publication[] = [];
    for (const m of found) {
      const n = numberingOf(m.headers);
      if (!n || n.epoch !== epoch || n.offset < from || n.offset > to) continue;
      const pub = decodeStored(m.body);
      if (pub) out.push({ ...pub, offset: n.offset, epoch });
      else this.fault(new Error(`undecodable history message ${m.seq} on ${m.subject}`), 'history');
    }
    return out;
  }

  /** The channel's last stored message, or where its numbering stands when the history stream holds none. */
  private async head(streams: PolicyStreams, subject: string): Promise<Head> {
    const last = await getMessage(this.link(), streams.history, { last: subject });
    if (last) {
      const n = numberingOf(last.headers);
      if (n) return { seq: last.seq, ...n };
      // Not ours (published there by hand): start a numbering after it rather than refuse the channel for good.
      this.fault(new Error(`message ${last.seq} on ${subject} has no numbering: a new epoch starts`), 'history');
      return { seq: last.seq, offset: 0, epoch: newEpoch() };
    }
    return (await this.kept(streams, subject)) ?? { seq: 0, offset: 0, epoch: newEpoch() };
  }

  /**
   * The numbering the position mirror kept for a channel the history stream
   * holds nothing of; null when it kept none. The mirror copies
   * asynchronously, so it is trusted only once it has copied every message
   * the history stream dropped (all older than what the stream still holds):
   * its last sequence must reach the history stream's first one, minus 1.
   * A mirror lagging that far for a second is reported, and the numbering
   * restarts (a new epoch is always safe: clients then reload).
   */
  private async kept(streams: PolicyStreams, subject: string): Promise<Head | null> {
    const deadline = Date.now() + MIRROR_WAIT_MS;
    for (;;) {
      const link = this.link();
      const [history, position] = await Promise.all([
        link.read('stream info', (jsm) => jsm.streams.info(streams.history)),
        link.read('stream info', (jsm) => jsm.streams.info(streams.position)),
      ]);
      if (position.state.last_seq + 1 >= history.state.first_seq) {
        const m = await getMessage(link, streams.position, { last: subject });
        const n = m ? numberingOf(m.headers) : undefined;
        return n ? { seq: 0, ...n } : null;
      }
      if (Date.now() >= deadline) {
        this.fault(new Error(`the mirror ${streams.position} lags behind ${streams.history}: ${subject} restarts its numbering`), 'history');
        return null;
      }
      await sleep(100);
    }
  }

  private remember(key: string, head: Head): void {
    const known = this.heads.get(key);
    if (known && known.seq > head.seq) return;
    this.heads.delete(key);
    this.heads.set(key, head);
    if (this.heads.size > MAX_HEADS) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }

  /** Runs the publishes of one channel one after another. */
  private serialize<T>(key: string, run: () => Promise<T>): Promise<T> {
    const before = this.queues.get(key) ?? Promise.resolve();
    const result = before.then(run, run);
    const tail = result.then(noop, noop);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return result;
  }

  /** A publish failed for another reason than a collision: a stream that is gone is made again next time. */
  private failed(err: unknown, policy: HistoryPolicy): Error {
    const error = err instanceof Error ? err : new Error(String(err));
    if (apiCode(err) === 10059 || /no responders|stream not found/i.test(error.message)) this.streams.forget(policy);
    return error;
  }
}
