/**
 * Presence in a JetStream KV bucket (`<p>_presence`, one value per key):
 * key `<tok(channel)>.<tok(session)>`, value `{user, session, node, ttl}`.
 *
 * NATS 2.9 has no per-key TTL, so an entry expires `ttl` ms after the
 * server stored it (the server's clock), compared with this node's clock
 * when the entry is read: node and server clocks are assumed to agree to
 * well within a TTL (NTP). Reads skip expired entries and delete them
 * (only if not refreshed meanwhile). The bucket drops anything not written
 * for a day, so entries never read again do not pile up.
 */
import type { KV } from '@nats-io/kv';
import { KvBucket } from './bucket.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { NatsLink } from './link.js';
import type { NatsNames } from './names.js';
import { getMessage, type Stored } from './reader.js';
import type { NatsStreams } from './streams.js';

/** What the bucket keeps at most, whatever an entry's TTL (ms). */
const BUCKET_MAX_AGE_MS = 24 * 3600 * 1000;
/** KV writes in flight at once per call. */
const CONCURRENCY = 256;
/** Entries one read returns at most. */
const MAX_ENTRIES = 100_000;

interface StoredEntry extends PresenceEntry {
  ttl: number;
}

function isStoredEntry(v: unknown): v is StoredEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.user === 'string' && typeof e.session === 'string' && typeof e.node === 'string' && typeof e.ttl === 'number';
}

/** Runs `work` on each item, at most `CONCURRENCY` at a time; rejects with the first failure once all settled. */
async function pooled<T>(items: T[], work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** Presence in its bucket: the presence part of the NATS broker's `Store`. */
export class NatsPresence implements Pick<Store, 'presenceAdd' | 'presenceRemove' | 'presence'> {
  private readonly bucket: KvBucket;

  constructor(
    private readonly link: () => NatsLink,
    private readonly names: NatsNames,
    streams: NatsStreams,
    replicas: number,
  ) {
    this.bucket = new KvBucket(names.presenceBucket, link, streams, replicas, BUCKET_MAX_AGE_MS);
  }

  async presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    if (items.length === 0) return;
    const kv = await this.kv();
    const ttl = Math.max(1, Math.ceil(ttlMs));
    await pooled(items, ({ channel, entry }) => {
      const value: StoredEntry = { user: entry.user, session: entry.session, node: entry.node, ttl };
      return kv.put(this.names.presenceKey(channel, entry.session), JSON.stringify(value));
    });
  }

  async presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    if (items.length === 0) return;
    const kv = await this.kv();
    await pooled(items, ({ channel, session }) => kv.delete(this.names.presenceKey(channel, session)));
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    const kv = await this.kv();
    const link = this.link();
    // One key per subject (the bucket keeps one message per subject), walked
    // with "next message matching the filter" reads from the stream leader.
    // Not a last-per-subject consumer: on a 2.9 cluster under load one
    // delivered some entries several times and left others out.
    const stream = `KV_${this.names.presenceBucket}`;
    const filter = `$KV.${this.names.presenceBucket}.${this.names.presenceKeys(channel)}`;
    // A replicated 2.9 stream can briefly hold an older revision of a key
    // next to the newer one (its one-per-subject limit lags): the newest wins.
    const newest = new Map<string, Stored>();
    for (let seq = 1, n = 0; n < MAX_ENTRIES; n++) {
      const m = await getMessage(link, stream, { next: filter, seq });
      if (!m) break;
      const seen = newest.get(m.subject);
      if (!seen || seen.seq < m.seq) newest.set(m.subject, m);
      seq = m.seq + 1;
    }
    const found = [...newest.values()];
    const now = Date.now();
    const live: PresenceEntry[] = [];
    const expired: Array<{ key: string; seq: number }> = [];
    const head = `$KV.${this.names.presenceBucket}.`.length;
    for (const m of found) {
      if (m.headers?.get('KV-Operation')) continue; // DEL or PURGE
      let e: unknown;
      try {
        e = JSON.parse(m.body);
      } catch {
        e = undefined;
      }
      // A damaged entry is dropped like an expired one.
      if (!isStoredEntry(e) || m.storedAt + e.ttl <= now) expired.push({ key: m.subject.slice(head), seq: m.seq });
      else live.push({ user: e.user, session: e.session, node: e.node });
    }
    // Only if still the value read: an entry refreshed meanwhile stays.
    await pooled(expired, ({ key, seq }) => kv.delete(key, { previousSeq: seq }).catch(() => undefined));
    return live;
  }

  private kv(): Promise<KV> {
    return this.bucket.kv();
  }
}
