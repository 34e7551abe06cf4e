/**
 * A channel's history in Redis: the meta hash (top offset, epoch) and a
 * stream with one entry per offset (ID `<offset>-0`, capped at the policy
 * size), written by the publish script together with the publication
 * itself, and read back consistently by the history script.
 *
 * A publication routed to every node or to node inboxes always goes through
 * one script, history or not: the slot's master then sends the publications
 * of one channel out in offset order, whichever node published them.
 */
import { newEpoch } from '../epoch.js';
import type { Publication, PublishResult } from '../../protocol/index.js';
import {
  TO_SUBSCRIBERS,
  type Idempotency,
  type PublishReceipt,
  type Route,
  type Store,
} from '../broker.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery, Resumption } from '../history.js';
import { decodeAck } from './acks.js';
import { decodeStored, encodeEnvelope, encodeStored, type PublishInput } from './codec.js';
import type { RedisKeys } from './keys.js';
import {
  HISTORY,
  HISTORY_RANGE,
  once as onceOf,
  PLAIN_PUBLISH,
  PUBLISH_BATCH,
  ROUTED_PUBLISH,
  STORE_ROUTED,
} from './scripts.js';
import type { CommandClient, LuaScript } from './lua.js';
import { TurnBatch } from '../../shared/batch.js';
import { chunks, groupBy } from './batches.js';
import { keySlot } from './slot.js';

/**
 * The numbering of a channel outlives quiet periods: its meta hash expires
 * only after this long without a publish or a read (or the history TTL, if
 * longer), like the memory broker's idle streams.
 */
export const META_IDLE_MS = 24 * 3600 * 1000;


/** The publication routed to one receiver before a new one (offset 0: none). */
export interface Predecessor {
  /** The receiving node; '' stands for every receiver not listed otherwise. */
  node: string;
  offset: number;
  /** Server time (ms) at which it was stored; 0 for none. */
  at: number;
}

/** What `storeRouted` did: the numbering (when stored), and who receives it after what. */
export interface StoredRoute {
  offset?: number;
  epoch?: string;
  /** Server time (ms) at which it was stored; 0 when it was not. */
  at: number;
  /** An earlier store with the same idempotency key did it: publish nothing. */
  duplicate?: boolean;
  /**
   * Route `nodes`: one per target node (explicit and registered, each once).
   * Other routes: '' first, then the nodes whose predecessor is a later one.
   * Offsets are 0 when nothing was stored.
   */
  prevs: Predecessor[];
}

/** Stored publications of a channel in an offset range, and its current numbering. */
export interface HistoryRange {
  /** '' when the channel has no numbering (never published, or history lost). */
  epoch: string;
  top: number;
  messages: Publication[];
}

/** A publication with history on its way to the broker in the turn's batch. */
interface Queued {
  channel: string;
  stored: string;
  ts: number;
  history: HistoryPolicy;
  once: Idempotency | undefined;
}

/** What one publication of a batch came to: its receipt, or why its part of the batch failed. */
type Outcome = { receipt: PublishReceipt } | { error: unknown };

export class RedisStreams implements Pick<Store, 'history' | 'resume'> {
  /**
   * Publications with history routed to subscribers, gathered over a turn
   * and sent as one script call (per slot, in a cluster): Redis numbers,
   * stores and publishes them in one step, in the order they were made.
   */
  private readonly batch = new TurnBatch<Queued, Outcome>((items) => this.publishBatch(items));

  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
    /** `publish` (classic pub/sub) or `spublish` (sharded, in a cluster). */
    private readonly publishCommand: 'publish' | 'spublish',
  ) {}

  async publish(pub: PublishInput, history: HistoryPolicy | null, route: Route = TO_SUBSCRIBERS, once?: Idempotency): Promise<PublishReceipt> {
    const stored = encodeStored(pub);
    const ts = Number.isFinite(pub.ts) ? Math.trunc(pub.ts) : Date.now();
    if (route.to !== 'subscribers') return this.publishRouted(pub.channel, stored, ts, history, route, once);
    const channel = this.keys.pubsub(pub.channel);
    if (!history || history.size <= 0) {
      const envelope = encodeEnvelope(stored, ts);
      if (once) {
        const { duplicate } = await this.run(PLAIN_PUBLISH, pub.channel, [], [this.publishCommand, channel, envelope], once);
        return duplicate ? { duplicate } : {};
      }
      await (this.publishCommand === 'publish' ? this.client().publish(channel, envelope) : this.client().spublish(channel, envelope));
      return {};
    }
    const outcome = await this.batch.add({ channel: pub.channel, stored, ts, history, once });
    if ('error' in outcome) throw outcome.error;
    return outcome.receipt;
  }

  /** One script call per slot (all of them outside a cluster) and chunk; a failed call fails only its own publications. */
  private async publishBatch(items: Queued[]): Promise<Outcome[]> {
    const outcomes = new Array<Outcome>(items.length);
    const indexed = items.map((item, index) => ({ item, index }));
    const groups = this.publishCommand === 'spublish' ? [...groupBy(indexed, ({ item }) => keySlot(this.keys.meta(item.channel))).values()] : [indexed];
    const epoch = newEpoch();
    await Promise.all(
      groups.flatMap(chunks).map(async (part) => {
        const keys: string[] = [];
        const args: Array<string | number> = [this.publishCommand];
        for (const { item } of part) {
          const meta = this.keys.meta(item.channel);
          keys.push(meta, this.keys.history(item.channel), item.once ? this.keys.once(item.channel, item.once.key) : meta);
          args.push(
            epoch,
            Math.floor(item.history.size),
            ttl(item.history.ttlMs),
            metaTtl(item.history),
            item.stored,
            item.ts,
            this.keys.pubsub(item.channel),
            item.once ? Math.max(1, Math.ceil(item.once.windowMs)) : 0,
          );
        }
        try {
          const reply = await PUBLISH_BATCH.run(this.client(), keys, args);
          if (!Array.isArray(reply) || reply.length !== part.length * 3) {
            throw new Error(`unexpected reply from the publish script: ${JSON.stringify(reply)}`);
          }
          part.forEach(({ index }, k) => {
            const result = numbered([reply[k * 3 + 1], reply[k * 3 + 2]]);
            outcomes[index] = { receipt: receipt(result, reply[k * 3] === '1') };
          });
        } catch (error) {
          for (const { index } of part) outcomes[index] = { error };
        }
      }),
    );
    return outcomes;
  }

  private async publishRouted(
    channel: string,
    stored: string,
    ts: number,
    history: HistoryPolicy | null,
    route: Exclude<Route, { to: 'subscribers' }>,
    once: Idempotency | undefined,
  ): Promise<PublishReceipt> {
    const keeps = history !== null && history.size > 0;
    const args: Array<string | number> = [
      newEpoch(),
      keeps ? Math.floor(history.size) : 0,
      keeps ? ttl(history.ttlMs) : 0,
      keeps ? metaTtl(history) : 0,
      stored,
      ts,
      keeps ? '1' : '0',
    ];
    if (route.to === 'all') args.push('all', this.keys.broadcast, '0');
    else args.push('nodes', this.keys.inboxHead, route.registered ? '1' : '0', ...route.nodes);
    const { reply, duplicate } = await this.run(
      ROUTED_PUBLISH,
      channel,
      [this.keys.meta(channel), this.keys.history(channel), this.keys.registry(channel)],
      args,
      once,
    );
    return receipt(keeps ? numbered(reply) : {}, duplicate);
  }

  /**
   * Run `script`, or, with `once`, its at-most-once form (see `once` in
   * scripts.ts): then `duplicate` says that an earlier run made `reply`.
   */
  private async run(
    script: LuaScript,
    channel: string,
    keys: string[],
    args: Array<string | number>,
    once: Idempotency | undefined,
  ): Promise<{ reply: unknown; duplicate: boolean }> {
    if (!once) return { reply: await script.run(this.client(), keys, args), duplicate: false };
    const out = await onceScript(script).run(
      this.client(),
      [...keys, this.keys.once(channel, once.key)],
      [Math.max(1, Math.ceil(once.windowMs)), ...args],
    );
    if (!Array.isArray(out) || out.length !== 2 || (out[0] !== '0' && out[0] !== '1')) {
      throw new Error(`unexpected reply from the ${script.name} script run once: ${JSON.stringify(out)}`);
    }
    return { reply: out[1], duplicate: out[0] === '1' };
  }

  /**
   * For a broker that carries publications itself: number and store (with
   * history) without publishing, resolve a `nodes` route (the registry read
   * in the same step), and return each receiver's predecessor. Without
   * history nothing is stored, and only a `nodes` route with `registered`
   * needs Redis at all (the caller may skip the call otherwise).
   */
  async storeRouted(pub: PublishInput, history: HistoryPolicy | null, route: Route, once?: Idempotency): Promise<StoredRoute> {
    const keeps = history !== null && history.size > 0;
    const args: Array<string | number> = [
      newEpoch(),
      keeps ? Math.floor(history.size) : 0,
      keeps ? ttl(history.ttlMs) : 0,
      keeps ? metaTtl(history) : 0,
      encodeStored(pub),
      keeps ? '1' : '0',
    ];
    if (route.to === 'nodes') args.push('n', route.registered ? '1' : '0', ...route.nodes);
    else args.push(route.to === 'all' ? 'a' : 's', '0');
    const c = pub.channel;
    const { reply, duplicate } = await this.run(
      STORE_ROUTED,
      c,
      [this.keys.meta(c), this.keys.history(c), this.keys.registry(c), this.keys.prevs(c)],
      args,
      once,
    );
    if (!Array.isArray(reply) || reply.length < 3 || reply.length % 3 !== 0) {
      throw new Error(`unexpected reply from the store script: ${JSON.stringify(reply)}`);
    }
    const out: StoredRoute = { at: Number(reply[2]), prevs: [] };
    if (keeps) Object.assign(out, numbered(reply));
    if (duplicate) {
      out.duplicate = true;
      return out;
    }
    for (let i = 3; i < reply.length; i += 3) {
      out.prevs.push({ node: String(reply[i]), offset: Number(reply[i + 1]), at: Number(reply[i + 2]) });
    }
    return out;
  }

  /**
   * The stored publications with offsets in `from..to` (inclusive, at most
   * `limit`), read-only: no TTL trimming or extension, no new epoch. With
   * `from > to`, only the numbering.
   */
  async range(channel: string, from: number, to: number, limit: number): Promise<HistoryRange> {
    const reply = await HISTORY_RANGE.run(
      this.client(),
      [this.keys.meta(channel), this.keys.history(channel)],
      [Math.max(0, Math.floor(from)), Math.max(0, Math.floor(to)), Math.max(1, Math.floor(limit))],
    );
    if (!Array.isArray(reply) || reply.length < 2 || reply.length % 2 !== 0) {
      throw new Error(`unexpected reply from the range script: ${JSON.stringify(reply)}`);
    }
    const epoch = String(reply[0]);
    const out: HistoryRange = { epoch, top: Number(reply[1]), messages: [] };
    for (let i = 2; i < reply.length; i += 2) {
      const pub = decodeStored(String(reply[i + 1]), Number(reply[i]), epoch);
      if (pub) out.messages.push(pub);
    }
    return out;
  }

  /** See `Store.history`. */
  async history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage> {
    const since = query.since === undefined || !Number.isFinite(query.since) ? '' : String(Math.floor(query.since));
    return (await this.read(channel, since, query.limit, policy)).page;
  }

  /** See `Store.resume`: the acknowledged position and the history after it, in one script. */
  async resume(channel: string, reader: string, policy: HistoryPolicy): Promise<Resumption> {
    const { page, ack } = await this.read(channel, '', policy.size, policy, this.keys.ack(channel, reader));
    return { ack: decodeAck(ack, channel), page };
  }

  /** The history script: after `since`, or after what `ackKey` keeps when given. */
  private async read(channel: string, since: string, limit: number, policy: HistoryPolicy, ackKey?: string): Promise<{ page: HistoryPage; ack: string }> {
    const keys = [this.keys.meta(channel), this.keys.history(channel)];
    if (ackKey !== undefined) keys.push(ackKey);
    const reply = await HISTORY.run(this.client(), keys, ['', since, Math.max(0, Math.floor(limit)), ttl(policy.ttlMs), metaTtl(policy), Math.max(1, Math.floor(policy.size))]);
    if (!Array.isArray(reply) || reply.length < 4 || reply.length % 2 !== 0) {
      throw new Error(`unexpected reply from the history script: ${JSON.stringify(reply)}`);
    }
    const [offset, epoch, earliest, ack] = reply as [number, string, number, string];
    const page: HistoryPage = { offset, epoch, earliest, messages: [] };
    for (let i = 4; i < reply.length; i += 2) {
      const pub = decodeStored(String(reply[i + 1]), Number(reply[i]), epoch);
      if (pub) page.messages.push(pub);
    }
    return { page, ack: String(ack) };
  }
}

/** The at-most-once form of each script, made once. */
const onceForms = new Map<LuaScript, LuaScript>();
function onceScript(script: LuaScript): LuaScript {
  let form = onceForms.get(script);
  if (!form) onceForms.set(script, (form = onceOf(script)));
  return form;
}

function receipt(result: PublishResult, duplicate: boolean): PublishReceipt {
  return duplicate ? { ...result, duplicate } : result;
}

function numbered(reply: unknown): PublishResult {
  if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'string') {
    throw new Error(`unexpected reply from the publish script: ${JSON.stringify(reply)}`);
  }
  return { offset: reply[0], epoch: reply[1] };
}

function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

function metaTtl(policy: HistoryPolicy): number {
  return Math.max(META_IDLE_MS, ttl(policy.ttlMs));
}
