/**
 * Acknowledged positions and idempotency records in a JetStream KV bucket
 * (`<p>_ledger`). NATS 2.9 has no per-key TTL: a value carries its own
 * `ttl`, judged against the time the server stored it, and the bucket drops
 * whatever was not written for a week.
 *
 * Idempotency here is a claim, not one atomic step as in Redis: the first
 * publisher creates the record (`pending`), publishes, then writes the
 * result (`done`); others with the same key wait for the result. A node that
 * dies between publishing and writing the result leaves a claim that is
 * taken over after `CLAIM_MS`: only then can a retry publish a second time.
 */
import type { KV } from '@nats-io/kv';
import { sleep } from '../../shared/time.js';
import { KvBucket } from './bucket.js';
import type { PublishResult, StreamPosition } from '../../protocol/index.js';
import type { Idempotency, PublishReceipt, Store } from '../broker.js';
import type { NatsLink } from './link.js';
import type { NatsNames } from './names.js';
import { getMessage, type Stored } from './reader.js';
import type { NatsStreams } from './streams.js';

/** What the bucket keeps at most, whatever a value's TTL (ms). */
const BUCKET_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** A pending claim older than this is taken over: its publisher is presumed dead. */
export const CLAIM_MS = 10_000;
/** How often a waiting publisher looks at a pending claim. */
const POLL_MS = 25;
/** Compare-and-set attempts before giving up on a contended key. */
const MAX_CAS = 8;

type Record_ =
  | { kind: 'ack'; offset: number; epoch: string; ttl: number }
  | { kind: 'pending' }
  | { kind: 'done'; result: PublishResult; ttl: number };

function parse(m: Stored | null): { record: Record_; revision: number; storedAt: number } | null {
  if (!m || m.headers?.get('KV-Operation')) return null; // none, DEL or PURGE
  let v: unknown;
  try {
    v = JSON.parse(m.body);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || typeof (v as { kind?: unknown }).kind !== 'string') return null;
  return { record: v as Record_, revision: m.seq, storedAt: m.storedAt };
}


export class NatsLedger implements Pick<Store, 'saveAck' | 'loadAck'> {
  private readonly bucket: KvBucket;

  constructor(
    private readonly link: () => NatsLink,
    private readonly names: NatsNames,
    streams: NatsStreams,
    replicas: number,
  ) {
    this.bucket = new KvBucket(names.ledgerBucket, link, streams, replicas, BUCKET_MAX_AGE_MS);
  }

  async saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    const kv = await this.kv();
    const key = this.names.ackKey(channel, reader);
    const value = JSON.stringify({ kind: 'ack', offset: position.offset, epoch: position.epoch, ttl: Math.max(1, Math.ceil(ttlMs)) });
    for (let attempt = 0; attempt < MAX_CAS; attempt++) {
      const kept = parse(await this.read(key));
      const ack = kept?.record.kind === 'ack' && kept.storedAt + kept.record.ttl > Date.now() ? kept.record : undefined;
      // Never backwards within an epoch; a rewrite with the newer value still refreshes the TTL.
      const next = ack && ack.epoch === position.epoch && ack.offset > position.offset ? JSON.stringify({ ...ack, ttl: Math.max(1, Math.ceil(ttlMs)) }) : value;
      try {
        await (kept ? kv.update(key, next, kept.revision) : kv.create(key, next));
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw new Error(`acknowledged position of ${channel}: too much contention`);
  }

  async loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    const kv = await this.kv();
    const kept = parse(await this.read(this.names.ackKey(channel, reader)));
    if (!kept || kept.record.kind !== 'ack' || kept.storedAt + kept.record.ttl <= Date.now()) return null;
    return { offset: kept.record.offset, epoch: kept.record.epoch };
  }

  /**
   * Run `publish` at most once for `once.key` on `channel` (see the file
   * comment), or return the result of the publish that did.
   */
  async once(channel: string, once: Idempotency, publish: () => Promise<PublishResult>): Promise<PublishReceipt> {
    const kv = await this.kv();
    const key = this.names.onceKey(channel, once.key);
    const deadline = Date.now() + CLAIM_MS + 5_000;
    for (;;) {
      const kept = parse(await this.read(key));
      const now = Date.now();
      if (kept?.record.kind === 'done' && kept.storedAt + kept.record.ttl > now) return { ...kept.record.result, duplicate: true };
      if (kept?.record.kind === 'pending' && kept.storedAt + CLAIM_MS > now) {
        if (now > deadline) throw new Error(`idempotency key of ${channel}: the first publish neither finished nor gave up`);
        await sleep(POLL_MS);
        continue;
      }
      // Free, expired, or abandoned: claim it.
      let claimed: number;
      try {
        const pending = JSON.stringify({ kind: 'pending' });
        claimed = kept ? await kv.update(key, pending, kept.revision) : await kv.create(key, pending);
      } catch (err) {
        if (isConflict(err)) continue;
        throw err;
      }
      let result: PublishResult;
      try {
        result = await publish();
      } catch (err) {
        await kv.delete(key, { previousSeq: claimed }).catch(() => undefined);
        throw err;
      }
      await kv.update(key, JSON.stringify({ kind: 'done', result, ttl: Math.max(1, Math.ceil(once.windowMs)) }), claimed);
      return result;
    }
  }

  /**
   * The newest value of `key`, read from the stream leader (not a KV "direct
   * get", which a just-created replicated bucket on 2.9 may leave unanswered).
   */
  private async read(key: string): Promise<Stored | null> {
    await this.kv();
    const bucket = this.names.ledgerBucket;
    return getMessage(this.link(), `KV_${bucket}`, { last: `$KV.${bucket}.${key}` });
  }

  private kv(): Promise<KV> {
    return this.bucket.kv();
  }
}

/** A create on an existing key, or an update against a stale revision. */
function isConflict(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence|key exists|10071/i.test(err.message);
}
