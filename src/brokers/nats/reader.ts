/**
 * Reading stored messages back: one message by subject (from the stream
 * leader), or the messages of a subject through a short-lived consumer
 * (memory storage, no acks, deleted after use and dropped by the server
 * anyway when idle). Each read is bounded in count and time.
 */
import { AckPolicy, DeliverPolicy, type JsMsg, type StoredMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { NatsLink } from './link.js';

/** A stored message, however it was read. */
export interface Stored {
  seq: number;
  subject: string;
  headers: MsgHdrs | undefined;
  body: string;
  /** When the server stored it (ms since the Unix epoch, server clock). */
  storedAt: number;
}

const NS_PER_MS = 1_000_000;
/** A consumer left behind (its delete was lost) goes after this long idle. */
const CONSUMER_IDLE_NS = 30_000 * NS_PER_MS;

const noop = (): void => undefined;

function fromStoredMsg(m: StoredMsg): Stored {
  return { seq: m.seq, subject: m.subject, headers: m.header, body: new TextDecoder().decode(m.data), storedAt: m.time.getTime() };
}

function fromJsMsg(m: JsMsg): Stored {
  return {
    seq: m.seq,
    subject: m.subject,
    headers: m.headers,
    body: m.string(),
    storedAt: Math.floor(m.info.timestampNanos / NS_PER_MS),
  };
}

/** The last message of `subject` (`last`), or its first at or after `seq` (`next`); null when there is none. */
export async function getMessage(
  link: NatsLink,
  stream: string,
  query: { last: string } | { next: string; seq: number },
): Promise<Stored | null> {
  const request = 'last' in query ? { last_by_subj: query.last } : { seq: query.seq, next_by_subj: query.next };
  const m = await link.read(`read ${stream}`, (jsm) => jsm.streams.getMessage(stream, request));
  return m ? fromStoredMsg(m) : null;
}

export interface ReadSpec {
  stream: string;
  /** A subject, or a wildcard with `last`. */
  filter: string;
  /** From this stream sequence, or the last message of each subject matching `filter`. */
  from: number | 'last';
  /** At most this many messages. */
  max: number;
  /** Stop after a message for which this is true. */
  stop?: (m: Stored) => boolean;
}

/** The messages `spec` selects, in stream order (fewer if they go meanwhile). */
export async function readMessages(link: NatsLink, spec: ReadSpec): Promise<Stored[]> {
  const out: Stored[] = [];
  if (spec.max <= 0) return out;
  const timeoutMs = link.tuning.requestTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  // A consumer whose creation answer was lost is deleted by the server once idle.
  const info = await link.read(`read ${spec.stream}`, (jsm) =>
    jsm.consumers.add(spec.stream, {
      ack_policy: AckPolicy.None,
      filter_subject: spec.filter,
      mem_storage: true,
      inactive_threshold: CONSUMER_IDLE_NS,
      ...(spec.from === 'last'
        ? { deliver_policy: DeliverPolicy.LastPerSubject }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, spec.from) }),
    }),
  );
  try {
    if (info.num_pending === 0) return out;
    const consumer = link.js.consumers.getConsumerFromInfo(info);
    const expires = Math.max(1000, deadline - Date.now());
    const batch = await consumer.fetch({ max_messages: Math.min(spec.max, info.num_pending), expires });
    for await (const m of batch) {
      const stored = fromJsMsg(m);
      out.push(stored);
      if (out.length >= spec.max || m.info.pending === 0 || spec.stop?.(stored)) break;
    }
    batch.stop();
    return out;
  } finally {
    link.jsm.consumers.delete(spec.stream, info.name).catch(noop);
  }
}
