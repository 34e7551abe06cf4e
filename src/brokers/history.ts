/**
 * What a channel's history is and how it is read: the policy a namespace
 * gives it, a query, the page a broker answers with, and whether a page
 * covers what a reader missed.
 */
import type { Publication, StreamPosition } from '../protocol/index.js';

/** How much history a channel keeps. `size: 0` means none: no offsets, no recovery. */
export interface HistoryPolicy {
  size: number;
  ttlMs: number;
}

export interface HistoryQuery {
  /** Return messages with offsets greater than this; omit for the newest ones. */
  since?: number;
  /** At most this many messages (the oldest first after `since`); 0 returns only the position. */
  limit: number;
}

export interface HistoryPage {
  /** The channel's top offset: the offset of its newest message (0 when none was ever published). */
  offset: number;
  epoch: string;
  /** The smallest offset still stored, or `offset + 1` when nothing is stored. */
  earliest: number;
  messages: Publication[];
}

/** What `Store.resume` answers: the acknowledged position (null: none kept) and the page of history after it. */
export interface Resumption {
  ack: StreamPosition | null;
  page: HistoryPage;
}

/** The history query of a reader resuming after `ack` (from the start of what is kept when none). */
function resumeQuery(ack: StreamPosition | null, policy: HistoryPolicy): HistoryQuery {
  return { since: ack?.offset ?? 0, limit: policy.size };
}

/** `Store.resume` as two reads, one after the other: for a store that cannot read both in one step. */
export async function resumeInTwoReads(
  store: {
    loadAck(channel: string, reader: string): Promise<StreamPosition | null>;
    history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage>;
  },
  channel: string,
  reader: string,
  policy: HistoryPolicy,
): Promise<Resumption> {
  const ack = await store.loadAck(channel, reader);
  return { ack, page: await store.history(channel, resumeQuery(ack, policy), policy) };
}

/**
 * Whether `page`, read after `position`, holds everything published since:
 * the same epoch (the stream was not lost and restarted), a position the
 * channel has reached, and nothing after it trimmed away yet.
 */
export function covers(page: HistoryPage, position: StreamPosition): boolean {
  return position.epoch === page.epoch && position.offset <= page.offset && position.offset + 1 >= page.earliest;
}
