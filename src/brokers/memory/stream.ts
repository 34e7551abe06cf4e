/**
 * One channel's history in memory: a ring of the last `size` messages with
 * their offsets, expiring after `ttlMs`, under an epoch that changes only
 * when the numbering restarts (the stream was dropped and created anew).
 */
import type { Publication } from '../../protocol/index.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
import { newEpoch } from '../epoch.js';

interface Entry {
  pub: Publication;
  expiresAt: number;
}


export class MemoryStream {
  readonly epoch = newEpoch();
  /** Offset of the newest message; 0 before the first. */
  top = 0;
  /** When the stream was last published to or read; idle streams are dropped after a while. */
  touchedAt: number;
  private ring: Array<Entry | undefined> = [];
  /** Index in `ring` of the oldest entry. */
  private head = 0;
  private count = 0;

  constructor(now: number) {
    this.touchedAt = now;
  }

  /** Append a message, returning the stored publication with its offset. */
  append(pub: Omit<Publication, 'offset' | 'epoch'>, policy: HistoryPolicy, now: number): Publication {
    const stored: Publication = { ...pub, offset: ++this.top, epoch: this.epoch };
    if (this.ring.length !== policy.size) this.resize(policy.size);
    const entry = { pub: stored, expiresAt: now + policy.ttlMs };
    const cap = this.ring.length;
    if (this.count < cap) {
      this.ring[(this.head + this.count) % cap] = entry;
      this.count++;
    } else {
      this.ring[this.head] = entry;
      this.head = (this.head + 1) % cap;
    }
    this.touchedAt = now;
    return stored;
  }

  read(query: HistoryQuery, now: number): HistoryPage {
    this.expire(now);
    this.touchedAt = now;
    const earliest = this.count === 0 ? this.top + 1 : this.top - this.count + 1;
    const messages: Publication[] = [];
    if (query.limit > 0 && this.count > 0) {
      const from = query.since === undefined ? Math.max(earliest, this.top - query.limit + 1) : Math.max(earliest, query.since + 1);
      const cap = this.ring.length;
      for (let off = from; off <= this.top && messages.length < query.limit; off++) {
        const e = this.ring[(this.head + (off - earliest)) % cap];
        if (e) messages.push(e.pub);
      }
    }
    return { offset: this.top, epoch: this.epoch, earliest, messages };
  }

  /** Whether the stream holds nothing and has been idle for `idleMs`. */
  idle(now: number, idleMs: number): boolean {
    this.expire(now);
    return this.count === 0 && now - this.touchedAt > idleMs;
  }

  private expire(now: number): void {
    const cap = this.ring.length;
    while (this.count > 0) {
      const e = this.ring[this.head];
      if (e && e.expiresAt > now) break;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.count--;
    }
  }

  /** Keep the newest entries when the policy's size changes (namespaces reconfigured). */
  private resize(size: number): void {
    const keep: Entry[] = [];
    for (let i = Math.max(0, this.count - size); i < this.count; i++) {
      const e = this.ring[(this.head + i) % this.ring.length];
      if (e) keep.push(e);
    }
    this.ring = new Array<Entry | undefined>(size);
    keep.forEach((e, i) => (this.ring[i] = e));
    this.head = 0;
    this.count = keep.length;
  }
}
