/**
 * A channel's history in Redis: the meta hash (top offset, epoch) and a
 * stream with one entry per offset (ID `<offset>-0`, capped at the policy
 * size), written by the publish script together with the publication
 * itself, and read back consistently by the history script.
 */
import { randomBytes } from 'node:crypto';
import type { PublishResult } from '../../protocol/index.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../broker.js';
import { decodeStored, encodeEnvelope, encodeStored, type PublishInput } from './codec.js';
import type { RedisKeys } from './keys.js';
import { HISTORY, PUBLISH, type CommandClient } from './scripts.js';

/**
 * The numbering of a channel outlives quiet periods: its meta hash expires
 * only after this long without a publish or a read (or the history TTL, if
 * longer), like the memory broker's idle streams.
 */
export const META_IDLE_MS = 24 * 3600 * 1000;

/** A new epoch: 8 characters of `[A-Za-z0-9_-]` (safe inside the JSON the publish script writes). */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

export class RedisStreams {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
    /** `publish` (classic pub/sub) or `spublish` (sharded, in a cluster). */
    private readonly publishCommand: 'publish' | 'spublish',
  ) {}

  async publish(pub: PublishInput, history: HistoryPolicy | null): Promise<PublishResult> {
    const stored = encodeStored(pub);
    const ts = Number.isFinite(pub.ts) ? Math.trunc(pub.ts) : Date.now();
    const channel = this.keys.pubsub(pub.channel);
    if (!history || history.size <= 0) {
      const envelope = encodeEnvelope(stored, ts);
      await (this.publishCommand === 'publish' ? this.client().publish(channel, envelope) : this.client().spublish(channel, envelope));
      return {};
    }
    const reply = await PUBLISH.run(
      this.client(),
      [this.keys.meta(pub.channel), this.keys.history(pub.channel)],
      [
        newEpoch(),
        Math.floor(history.size),
        ttl(history.ttlMs),
        metaTtl(history),
        stored,
        ts,
        channel,
        this.publishCommand,
      ],
    );
    if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'string') {
      throw new Error(`unexpected reply from the publish script: ${JSON.stringify(reply)}`);
    }
    return { offset: reply[0], epoch: reply[1] };
  }

  async read(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage> {
    const since = query.since === undefined || !Number.isFinite(query.since) ? '' : String(Math.floor(query.since));
    const reply = await HISTORY.run(
      this.client(),
      [this.keys.meta(channel), this.keys.history(channel)],
      [newEpoch(), since, Math.max(0, Math.floor(query.limit)), ttl(policy.ttlMs), metaTtl(policy)],
    );
    if (!Array.isArray(reply) || reply.length < 3 || reply.length % 2 === 0) {
      throw new Error(`unexpected reply from the history script: ${JSON.stringify(reply)}`);
    }
    const [offset, epoch, earliest] = reply as [number, string, number];
    const page: HistoryPage = { offset, epoch, earliest, messages: [] };
    for (let i = 3; i < reply.length; i += 2) {
      const pub = decodeStored(String(reply[i + 1]), Number(reply[i]), epoch);
      if (pub) page.messages.push(pub);
    }
    return page;
  }
}

function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

function metaTtl(policy: HistoryPolicy): number {
  return Math.max(META_IDLE_MS, ttl(policy.ttlMs));
}
