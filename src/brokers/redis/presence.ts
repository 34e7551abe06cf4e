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

/** The channel and session of a node index member (`indexMember`), or undefined for a damaged one. */
function locate(member: string): { channel: string; session: string } | undefined {
  const cut = member.indexOf('\n');
  return cut < 0 ? undefined : { channel: member.slice(0, cut), session: member.slice(cut + 1) };
}

/** `write` once per node and chunk of `items` (the join and leave scripts log one node's entries). */
function perNode(items: PresenceItem[], write: (node: string, entries: PresenceEntry[]) => Promise<void>): Array<Promise<void>> {
  return [...groupBy(items, (i) => i.entry.node)].flatMap(([node, mine]) => chunks(mine).map((part) => write(node, part.map((i) => i.entry))));
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
      const events = this.events;
      if (events?.logsMembers(channel)) {
        calls.push(...perNode(group, (node, entries) => events.joined(channel, node, entries)));
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
      const events = this.events;
      if (events?.logsMembers(channel)) {
        calls.push(...perNode(group, (node, entries) => events.left(channel, node, entries)));
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
      const personal = (m: string): boolean => personalChannelUser(locate(m)?.channel ?? '') !== undefined;
      await eachIndexed(this.client, index, (members) => this.dropMembers(node, index, members.filter((m) => !personal(m))));
    }
    await eachIndexed(this.client, index, (members) => this.dropMembers(node, index, members));
  }

  /** Delete the entries of `node` that index `members` list, then the members. */
  private async dropMembers(node: string, index: string, members: string[]): Promise<void> {
    if (members.length === 0) return;
    const client = this.client();
    const located = members.flatMap((m) => locate(m) ?? []);
    await Promise.all(
      [...groupBy(located, (l) => l.channel)].flatMap(([channel, group]) =>
        chunks(group).map(async (part) => {
          const sessions = part.map((l) => l.session);
          const logged = this.logged(channel);
          // Several survivors may drop at once: the script logs `offline` only in the one that removed the last entry.
          if (logged) return logged.events.removed(channel, logged.user, node, undefined, sessions);
          if (this.events?.logsMembers(channel)) return this.dropMembersOf(this.events, channel, node, sessions);
          return client.hdel(this.keys.presence(channel), ...sessions);
        }),
      ),
    );
    await Promise.all(chunks(members).map((part) => client.srem(index, ...part)));
  }

  /**
   * Drop `sessions` of `node` on a channel whose leaves are logged: the
   * script logs `leave` only in the survivor that removed the entry. The
   * users come from the entries (those already gone are skipped); a damaged
   * entry is deleted without an event.
   */
  private async dropMembersOf(events: RedisEvents, channel: string, node: string, sessions: string[]): Promise<void> {
    const key = this.keys.presence(channel);
    const texts = await this.client().hmget(key, ...sessions);
    const entries = texts.flatMap((text, i) => {
      const e = parseEntry(text);
      return e ? [{ user: e.user, session: sessions[i]! }] : [];
    });
    const damaged = sessions.filter((_, i) => texts[i] !== null && !parseEntry(texts[i]!));
    await Promise.all([events.left(channel, node, entries), damaged.length > 0 ? this.client().hdel(key, ...damaged) : undefined]);
  }

  /** The event log and the user, when the entries of `channel` go through the log's scripts. */
  private logged(channel: string): { events: RedisEvents; user: string } | undefined {
    const user = this.events?.logs(channel);
    return this.events && user !== undefined ? { events: this.events, user } : undefined;
  }
}
