/**
 * Presence in a JetStream KV bucket (`<p>_presence_v2`), owned by nodes: key
 * `<tok(channel)>.<tok(node)>.<tok(session)>`, value `{user, session, node}`.
 *
 * An entry lives until it is removed or its node's entries are dropped:
 * nothing expires and nothing is refreshed, so the bucket has no max age (a
 * session open for a week keeps its entry) and an idle node costs NATS
 * nothing. Adding is one KV put per entry.
 *
 * - Dropping a node is one stream purge whose subject filter holds the
 *   node's token (`*.<tok(node)>.*`): the server removes every entry of the
 *   node, on every channel, in one step; what the node adds afterwards stays.
 * - Removing an entry publishes a purge marker on its key (a rollup: the
 *   server removes the entry as it stores the marker, in order with any
 *   put of the same key), then purges the marker itself in the background
 *   (only up to its own sequence, so a later put of the key stays). A
 *   closed session leaves nothing behind; a marker whose purge was lost
 *   goes with its node's entries.
 * - Node marks: each node that adds entries also keeps a key `n.<tok(node)>`,
 *   written by its first add and again by an add once a minute has passed
 *   (no timer: a node that adds nothing writes nothing). `nodesWithEntries`
 *   lists the marks and asks, per marked node, for its first entry, so it
 *   reads one message per node rather than every entry. A mark whose node
 *   holds no entry is left alone for ten minutes (its node may be adding
 *   one right now), then removed if unchanged, so the marks of nodes gone
 *   for good do not pile up.
 */
import type { KV } from '@nats-io/kv';
import { Empty, headers } from '@nats-io/transport-node';
import { KvBucket } from './bucket.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { NatsLink } from './link.js';
import type { NatsNames } from './names.js';
import { getMessage, type Stored } from './reader.js';
import type { NatsStreams } from './streams.js';

/** Entries live until removed or dropped: the bucket keeps everything (no max age). */
const NO_MAX_AGE = 0;
/** KV writes in flight at once per call. */
const CONCURRENCY = 256;
/** Entries one read returns at most. */
const MAX_ENTRIES = 100_000;
/** Node marks one `nodesWithEntries` reads at most. */
const MAX_NODES = 10_000;
/** A node's mark is written again by an add once this long has passed since it was last written (ms). */
const MARK_EVERY_MS = 60_000;
/** A mark whose node holds no entry is removed once it is this old (ms): well above `MARK_EVERY_MS`, clock skew included. */
export const STALE_MARK_MS = 10 * 60_000;
/** Messages a look for a node's first entry walks past (purge markers) before it counts the node as holding entries. */
const PROBE_STEPS = 1_000;

const noop = (): void => undefined;

function isEntry(v: unknown): v is PresenceEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.user === 'string' && typeof e.session === 'string' && typeof e.node === 'string';
}

/** The entry a stored message holds, or undefined for a purge marker or a damaged value. */
function entryOf(m: Stored): PresenceEntry | undefined {
  if (isMarker(m)) return undefined;
  try {
    const e: unknown = JSON.parse(m.body);
    return isEntry(e) ? { user: e.user, session: e.session, node: e.node } : undefined;
  } catch {
    return undefined;
  }
}

/** A KV delete or purge marker rather than a value. */
function isMarker(m: Stored): boolean {
  return Boolean(m.headers?.get('KV-Operation'));
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
export class NatsPresence implements Pick<Store, 'presenceAdd' | 'presenceRemove' | 'presence' | 'dropNode' | 'nodesWithEntries'> {
  private readonly bucket: KvBucket;
  private readonly stream: string;
  /** Subject of a key: this plus the key. */
  private readonly head: string;
  /** When this process last wrote each node's mark (ms, this node's clock). */
  private readonly marked = new Map<string, number>();

  constructor(
    private readonly link: () => NatsLink,
    private readonly names: NatsNames,
    streams: NatsStreams,
    replicas: number,
  ) {
    this.bucket = new KvBucket(names.presenceBucket, link, streams, replicas, NO_MAX_AGE);
    this.stream = `KV_${names.presenceBucket}`;
    this.head = `$KV.${names.presenceBucket}.`;
  }

  async presenceAdd(items: PresenceItem[]): Promise<void> {
    if (items.length === 0) return;
    const kv = await this.kv();
    const now = Date.now();
    const unmarked = [...new Set(items.map(({ entry }) => entry.node))].filter((node) => {
      const last = this.marked.get(node);
      return last === undefined || now - last >= MARK_EVERY_MS;
    });
    const writes: Array<() => Promise<unknown>> = [
      ...unmarked.map((node) => async () => {
        await kv.put(this.names.nodeMarkKey(node), node);
        this.marked.set(node, now);
      }),
      ...items.map(({ channel, entry }) => () => {
        const value: PresenceEntry = { user: entry.user, session: entry.session, node: entry.node };
        return kv.put(this.names.presenceKey(channel, entry.node, entry.session), JSON.stringify(value));
      }),
    ];
    await pooled(writes, (write) => write());
  }

  async presenceRemove(items: PresenceItem[]): Promise<void> {
    if (items.length === 0) return;
    await this.kv();
    const markers: Array<{ subject: string; seq: number }> = [];
    try {
      await pooled(items, async ({ channel, entry }) => {
        markers.push(await this.purgeMarker(this.names.presenceKey(channel, entry.node, entry.session)));
      });
    } finally {
      this.purgeMarkers(markers);
    }
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    await this.kv();
    const entries: PresenceEntry[] = [];
    for (const m of await this.newest(this.names.presenceKeys(channel), MAX_ENTRIES)) {
      const entry = entryOf(m);
      if (entry) entries.push(entry);
    }
    return entries;
  }

  async dropNode(node: string): Promise<void> {
    await this.kv();
    await this.link().jsm.streams.purge(this.stream, { filter: this.head + this.names.nodePresenceKeys(node) });
  }

  async nodesWithEntries(): Promise<string[]> {
    await this.kv();
    const nodes: string[] = [];
    const stale: Array<{ key: string; seq: number }> = [];
    await pooled(await this.newest(this.names.nodeMarkKeys(), MAX_NODES), async (m) => {
      const key = m.subject.slice(this.head.length);
      const node = this.names.markedNode(key);
      if (node === undefined || isMarker(m)) return;
      if (await this.holdsEntries(node)) nodes.push(node);
      else if (m.storedAt + STALE_MARK_MS < Date.now()) stale.push({ key, seq: m.seq });
    });
    // Only if unchanged since read: a node that wrote its mark again meanwhile keeps it.
    const removed: Array<{ subject: string; seq: number }> = [];
    await pooled(stale, async ({ key, seq }) => {
      removed.push(await this.purgeMarker(key, seq));
    }).catch(noop);
    this.purgeMarkers(removed);
    return nodes;
  }

  // ---- internals -------------------------------------------------------------

  /** Whether `node` holds any entry: the first of its entries, walking past purge markers for a while (beyond that, it counts as holding some). */
  private async holdsEntries(node: string): Promise<boolean> {
    const filter = this.head + this.names.nodePresenceKeys(node);
    for (let seq = 1, n = 0; n < PROBE_STEPS; n++) {
      const m = await getMessage(this.link(), this.stream, { next: filter, seq });
      if (!m) return false;
      if (!isMarker(m)) return true;
      seq = m.seq + 1;
    }
    return true;
  }

  /**
   * The newest message of each key matching `keys`, at most `max` read.
   * One key per subject (the bucket keeps one message per subject), walked
   * with "next message matching the filter" reads from the stream leader.
   * Not a last-per-subject consumer: on a 2.9 cluster under load one
   * delivered some entries several times and left others out.
   */
  private async newest(keys: string, max: number): Promise<Stored[]> {
    const link = this.link();
    const filter = this.head + keys;
    // A replicated 2.9 stream can briefly hold an older revision of a key
    // next to the newer one (its one-per-subject limit lags): the newest wins.
    const newest = new Map<string, Stored>();
    for (let seq = 1, n = 0; n < max; n++) {
      const m = await getMessage(link, this.stream, { next: filter, seq });
      if (!m) break;
      const seen = newest.get(m.subject);
      if (!seen || seen.seq < m.seq) newest.set(m.subject, m);
      seq = m.seq + 1;
    }
    return [...newest.values()];
  }

  /**
   * Removes `key`'s value: a purge marker with a rollup, so the server drops
   * what the key held as it stores the marker. With `ifSeq`, only if the
   * key's last message is still that one. Resolves with the marker.
   */
  private async purgeMarker(key: string, ifSeq?: number): Promise<{ subject: string; seq: number }> {
    const h = headers();
    h.set('KV-Operation', 'PURGE');
    h.set('Nats-Rollup', 'sub');
    const subject = this.head + key;
    const ack = await this.link().js.publish(subject, Empty, { headers: h, ...(ifSeq === undefined ? {} : { expect: { lastSubjectSequence: ifSeq } }) });
    return { subject, seq: ack.seq };
  }

  /** Purges the markers themselves, in the background: up to each one's sequence, so a later put of its key stays. */
  private purgeMarkers(markers: Array<{ subject: string; seq: number }>): void {
    if (markers.length === 0) return;
    let link: NatsLink;
    try {
      link = this.link();
    } catch {
      return;
    }
    void pooled(markers, ({ subject, seq }) => link.jsm.streams.purge(this.stream, { filter: subject, seq: seq + 1 })).catch(noop);
  }

  private kv(): Promise<KV> {
    return this.bucket.kv();
  }
}
