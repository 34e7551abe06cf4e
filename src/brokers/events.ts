/**
 * The event log: an optional capability of a broker's store, for the
 * events a node sends to the backend (`--webhook`). The store writes an
 * event in the same atomic step as the presence change that makes it (the
 * first entry of a user's personal channel anywhere in the cluster:
 * `online`; the removal or drop of the last: `offline`; on a channel of a
 * namespace with `joinLeave`, each session's entry added: `join`, removed
 * or dropped: `leave`), so that a transition is logged exactly once,
 * whichever node saw it, even when several nodes drop a dead node's
 * entries at once.
 *
 * The log is split in partitions by user. Each partition is delivered by
 * one node at a time, the holder of its lease, oldest event first: the
 * events of one user keep their order. A lease is taken over when it
 * expires or when its holder is declared dead (`release`).
 */

import type { WebhookEvent, WebhookEventType } from '../protocol/index.js';

/** The kinds of event the log keeps. */
export type EventType = WebhookEventType;

/** An event as the log keeps it: as the webhook carries it (`protocol/webhook.ts`). */
export type LoggedEvent = WebhookEvent;

/** How a node asks the store to log. */
export interface RecordOptions {
  /** Events waiting for delivery at most, across partitions; past it new events are dropped and reported. */
  maxPending: number;
  /** An event that was not logged because the log was full. */
  onOverflow(event: Omit<LoggedEvent, 'id'>): void;
  /**
   * Whether presence entries on `channel` log `join` (when the store adds a
   * session's entry) and `leave` (when it removes or drops it), partitioned
   * by the entry's user. Default: no channel.
   */
  joinLeave?(channel: string): boolean;
}

/** A partition's lease after a claim: this node's, another node's, or nobody's. */
export type LeaseState = 'mine' | 'other' | 'free';

/** What waits in the log: how many events, where, and since when the oldest. */
export interface Backlog {
  pending: number;
  /** Events waiting in each partition. */
  partitions: number[];
  /** `ts` of the oldest waiting event, or null when none waits. */
  oldestTs: number | null;
}

export interface EventLog {
  /** How many partitions the log has (numbered from 0). */
  readonly partitions: number;
  /**
   * Log presence transitions of personal channels from now on, and joins
   * and leaves of the channels `options.joinLeave` names. Every node of a
   * cluster that sends events records (each logs the transitions it makes).
   */
  record(options: RecordOptions): void;
  /**
   * Keep the leases `node` holds and take free ones until it holds `most`,
   * each for `ttlMs`; the state of each partition's lease afterwards.
   */
  claim(node: string, ttlMs: number, most: number): Promise<LeaseState[]>;
  /** Give up every lease `node` holds (it left, or the cluster declared it dead). */
  release(node: string): Promise<void>;
  /** Up to `count` of the oldest events of `partition`, oldest first. */
  read(partition: number, count: number): Promise<LoggedEvent[]>;
  /**
   * Forget `ids` of `partition` (delivered), if `node` still holds its
   * lease; false when it does not (another node delivers it now).
   */
  settle(partition: number, node: string, ids: string[]): Promise<boolean>;
  backlog(): Promise<Backlog>;
}

/** The partition of `user`'s events: FNV-1a of the id, so that every node and store agree. */
export function partitionOf(user: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/** Partitions of every store's log: enough to spread delivery over a few nodes, few enough to poll. */
export const EVENT_PARTITIONS = 16;

/** The bound of one partition for a bound of `maxPending` over all of them. */
export function partitionBound(maxPending: number, partitions: number): number {
  return Math.max(1, Math.ceil(maxPending / partitions));
}
