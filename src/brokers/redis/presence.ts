/**
 * Presence in Redis, per channel: a hash session → entry JSON under the
 * channel's hash tag, with no expiry. Each entry is also listed in its
 * node's index (`<channel>\n<session>`, see `owners.ts`), written before the
 * entry and removed after it, so that `dropNode` finds every entry of a node.
 * Plain commands, no script: an add or a remove is one pipelined write per
 * channel and per node (auto-pipelined, so one round trip for the call).
 * While the event log records (`events.ts`), the entries of personal
 * channels go through its scripts instead, which log `online` and `offline`
 * in the same step, and so do those of channels whose joins and leaves it
 * logs (`join`, `leave`).
 */
import { personalChannelUser } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import { chunks, groupBy } from './batches.js';
import type { RedisEvents } from './events.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { eachIndexed, type IndexedByNode } from './owners.js';

function isEntry(v: unknown): v is PresenceEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.user === 'string' && typeof e.session === 'string' && typeof e.node === 'string';
}

/** An entry as stored, or undefined for none or a damaged one (it goes with its session or its node). */
function parseEntry(text: string | null): PresenceEntry | undefined {
  if (text === null) return undefined;
  try {
    const e: unknown = JSON.parse(text);
    return isEntry(e) ? { user: e.user, session: e.session, node: e.node } : undefined;
  } catch {
    return undefined;
  }
}

/** The channel of a node index member. */
function channelOf(member: string): string {
  const cut = member.indexOf('\n');
  return cut < 0 ? member : member.slice(0, cut);
}

/** The node index member of an entry. Channel names hold no line break (see `protocol/channel.ts`). */
function indexMember({ channel, entry }: PresenceItem): string {
  return `${channel}\n${entry.session}`;
}

/** The presence part of the Redis store. */
export class RedisPresence implements Pick<Store, 'presenceAdd' | 'presenceRemove' | 'presence'>, IndexedByNode {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
    /** The event log, on a standalone Redis. */
    private readonly events?: RedisEvents,
  ) {}

  async presenceAdd(items: PresenceItem[]): Promise<void> {
    if (items.length === 0) return;
    const client = this.client();
    const byNode = groupBy(items, (i) => i.entry.node);
    const calls: Array<Promise<unknown>> = [];
    // Index members first: standalone, one connection runs commands in the order sent, so no entry is ever
    // unindexed. In a cluster the two go to their masters at once; should the index write alone fail, the
    // call rejects and the entry is left to the readers, who keep only the entries of live nodes.
    for (const [node, group] of byNode) {
      for (const part of chunks(group)) calls.push(client.sadd(this.keys.presenceOf(node), ...part.map(indexMember)));
    }
    for (const [channel, group] of groupBy(items, (i) => i.channel)) {
      if (this.events?.logsMembers(channel)) {
        const events = this.events;
        for (const [node, mine] of groupBy(group, (i) => i.entry.node)) {
          for (const part of chunks(mine)) calls.push(events.joined(channel, node, part.map((i) => i.entry)));
        }
        continue;
      }
      for (const part of chunks(group)) {
        const fields: string[] = [];
        for (const { entry } of part) fields.push(entry.session, JSON.stringify({ user: entry.user, session: entry.session, node: entry.node }));
        const logged = this.logged(channel);
        if (logged) calls.push(logged.events.added(channel, logged.user, part[0]!.entry.node, fields));
        else calls.push(client.hset(this.keys.presence(channel), ...fields));
      }
    }
    // Every write names its node again: one SADD, and a node dropped while it was alive is listed again by its next write.
    for (const node of byNode.keys()) calls.push(client.sadd(this.keys.nodes, node));
    await Promise.all(calls);
  }

  async presenceRemove(items: PresenceItem[]): Promise<void> {
    if (items.length === 0) return;
    const client = this.client();
    const calls: Array<Promise<unknown>> = [];
    // The entry first, its index member after it.
    for (const [channel, group] of groupBy(items, (i) => i.channel)) {
      if (this.events?.logsMembers(channel)) {
        const events = this.events;
        for (const [node, mine] of groupBy(group, (i) => i.entry.node)) {
          for (const part of chunks(mine)) calls.push(events.left(channel, node, part.map((i) => i.entry)));
        }
        continue;
      }
      for (const part of chunks(group)) {
        const sessions = part.map((i) => i.entry.session);
        const logged = this.logged(channel);
        const last = part[part.length - 1]!.entry;
        if (logged) calls.push(logged.events.removed(channel, logged.user, last.node, last.session, sessions));
        else calls.push(client.hdel(this.keys.presence(channel), ...sessions));
      }
    }
    for (const [node, group] of groupBy(items, (i) => i.entry.node)) {
      for (const part of chunks(group)) calls.push(client.srem(this.keys.presenceOf(node), ...part.map(indexMember)));
    }
    await Promise.all(calls);
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    return (await this.client().hvals(this.keys.presence(channel))).flatMap((text) => parseEntry(text) ?? []);
  }

  /**
   * While events are logged, a first walk drops the entries of
   * every channel but the personal ones, so that a user's `leave` events
   * come before its `offline`; the second walk drops the rest.
   */
  async dropIndexed(node: string): Promise<void> {
    const index = this.keys.presenceOf(node);
    if (this.events?.recording) {
      await eachIndexed(this.client, index, (members) => this.dropMembers(node, index, members.filter((m) => personalChannelUser(channelOf(m)) === undefined)));
    }
    await eachIndexed(this.client, index, (members) => this.dropMembers(node, index, members));
  }

  /** Delete the entries of `node` that index `members` list, then the members. */
  private async dropMembers(node: string, index: string, members: string[]): Promise<void> {
    if (members.length === 0) return;
    const client = this.client();
    const located = members.flatMap((m) => {
      const cut = m.indexOf('\n');
      return cut < 0 ? [] : [{ channel: m.slice(0, cut), session: m.slice(cut + 1) }];
    });
    await Promise.all(
      [...groupBy(located, (l) => l.channel)].flatMap(([channel, group]) =>
        chunks(group).map(async (part) => {
          const sessions = part.map((l) => l.session);
          const logged = this.logged(channel);
          // Several survivors may drop at once: the script logs `offline` only in the one that removed the last entry.
          if (logged) return logged.events.removed(channel, logged.user, node, undefined, sessions);
          // …and `leave` only in the one that removed the entry; the users come from the entries, which may be gone already.
          if (this.events?.logsMembers(channel)) return this.events.left(channel, node, await this.usersOf(channel, sessions));
          return client.hdel(this.keys.presence(channel), ...sessions);
        }),
      ),
    );
    await Promise.all(chunks(members).map((part) => client.srem(index, ...part)));
  }

  /** The sessions of `sessions` that still have an entry on `channel`, with their users. */
  private async usersOf(channel: string, sessions: string[]): Promise<Array<Pick<PresenceEntry, 'user' | 'session'>>> {
    const texts = await this.client().hmget(this.keys.presence(channel), ...sessions);
    return texts.flatMap((text, i) => {
      const e = parseEntry(text);
      return e ? [{ user: e.user, session: sessions[i]! }] : [];
    });
  }

  /** The event log and the user, when the entries of `channel` go through the log's scripts. */
  private logged(channel: string): { events: RedisEvents; user: string } | undefined {
    const user = this.events?.logs(channel);
    return this.events && user !== undefined ? { events: this.events, user } : undefined;
  }
}
