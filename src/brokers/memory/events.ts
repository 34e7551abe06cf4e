/**
 * The event log of the in-process broker: partitions in this process's
 * memory, beside the store, which logs a transition in the same synchronous
 * step as the presence change that makes it. Leases expire on the bus's
 * clock. Everything is lost with the process: for one node and for tests.
 */
import {
  EVENT_PARTITIONS, partitionBound, partitionOf,
  type Backlog, type EventLog, type EventType, type LeaseState, type LoggedEvent, type RecordOptions,
} from '../events.js';
import { personalChannelUser } from '../../protocol/index.js';
import type { PresenceEntry } from '../broker.js';

interface Lease {
  node: string;
  until: number;
}

export class MemoryEvents implements EventLog {
  readonly partitions = EVENT_PARTITIONS;
  private readonly logs: LoggedEvent[][] = Array.from({ length: EVENT_PARTITIONS }, () => []);
  private readonly leases = new Map<number, Lease>();
  private recording: RecordOptions | undefined;
  private seq = 0;
  /** Ids restart with the process: this keeps them apart from an earlier life's, which a backend may remember. */
  private readonly epoch = Math.random().toString(36).slice(2, 10);

  constructor(private readonly now: () => number) {}

  record(options: RecordOptions): void {
    this.recording = options;
  }

  /**
   * Log `type` for the user of personal `channel` (nothing for other
   * channels, or while not recording): the store calls this when the
   * channel's entries went from none to some, or back.
   */
  transition(type: EventType, channel: string, node: string, session?: string): void {
    const user = personalChannelUser(channel);
    if (user === undefined) return;
    this.append({ type, ts: this.now(), node, user, ...(session === undefined ? {} : { session }) });
  }

  /**
   * Log `join` or `leave` of `entry`'s session on `channel`, when the
   * recording names the channel: the store calls this when it added the
   * session's entry, or removed or dropped it.
   */
  member(type: 'join' | 'leave', channel: string, entry: PresenceEntry): void {
    if (!this.recording?.joinLeave?.(channel)) return;
    this.append({ type, ts: this.now(), node: entry.node, user: entry.user, session: entry.session, channel });
  }

  private append(event: Omit<LoggedEvent, 'id'>): void {
    const recording = this.recording;
    if (!recording) return;
    const partition = partitionOf(event.user, this.partitions);
    const log = this.logs[partition]!;
    if (log.length >= partitionBound(recording.maxPending, this.partitions)) return recording.onOverflow(event);
    log.push({ id: `${partition}-${this.epoch}-${++this.seq}`, ...event });
  }

  async claim(node: string, ttlMs: number, most: number): Promise<LeaseState[]> {
    const now = this.now();
    const states = Array.from({ length: this.partitions }, (_, p): LeaseState => {
      const holder = this.holder(p, now);
      return holder === node ? 'mine' : holder === undefined ? 'free' : 'other';
    });
    let count = states.filter((s) => s === 'mine').length;
    for (let p = 0; p < this.partitions; p++) {
      if (states[p] === 'free' && count < most) {
        states[p] = 'mine';
        count++;
      }
      if (states[p] === 'mine') this.leases.set(p, { node, until: now + ttlMs });
    }
    return states;
  }

  async release(node: string): Promise<void> {
    for (const [p, lease] of this.leases) if (lease.node === node) this.leases.delete(p);
  }

  async read(partition: number, count: number): Promise<LoggedEvent[]> {
    return this.logs[partition]!.slice(0, count).map((e) => ({ ...e }));
  }

  async settle(partition: number, node: string, ids: string[]): Promise<boolean> {
    if (this.holder(partition, this.now()) !== node) return false;
    const done = new Set(ids);
    const log = this.logs[partition]!;
    this.logs[partition] = log.filter((e) => !done.has(e.id));
    return true;
  }

  async backlog(): Promise<Backlog> {
    let oldestTs: number | null = null;
    for (const first of this.logs.map((log) => log[0])) {
      if (first && (oldestTs === null || first.ts < oldestTs)) oldestTs = first.ts;
    }
    const partitions = this.logs.map((log) => log.length);
    return { pending: partitions.reduce((a, b) => a + b, 0), partitions, oldestTs };
  }

  private holder(partition: number, now: number): string | undefined {
    const lease = this.leases.get(partition);
    return lease && lease.until > now ? lease.node : undefined;
  }
}
