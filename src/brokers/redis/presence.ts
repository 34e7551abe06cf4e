/**
 * Presence in Redis, per channel: a sorted set session → expiry time (ms,
 * server clock) and a hash session → entry JSON, both under the channel's
 * hash tag. Entries expire unless re-added; reads drop expired ones. Calls
 * for several channels go out together (auto-pipelined, one script per channel).
 */
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { PRESENCE_ADD, PRESENCE_LIST, PRESENCE_REMOVE } from './scripts.js';

/** Sessions per script call: bounds the size of one command. */
const CHUNK = 500;

function groupByChannel<T extends { channel: string }>(items: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const list = groups.get(item.channel);
    if (list) list.push(item);
    else groups.set(item.channel, [item]);
  }
  return groups;
}

function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

function isEntry(v: unknown): v is PresenceEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.user === 'string' && typeof e.session === 'string' && typeof e.node === 'string';
}

/** The presence part of the Redis store. */
export class RedisPresence implements Pick<Store, 'presenceAdd' | 'presenceRemove' | 'presence'> {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
  ) {}

  async presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const calls: Array<Promise<unknown>> = [];
    for (const [channel, group] of groupByChannel(items)) {
      for (const part of chunks(group)) {
        const args: Array<string | number> = [ttl];
        for (const { entry } of part) {
          args.push(entry.session, JSON.stringify({ user: entry.user, session: entry.session, node: entry.node }));
        }
        calls.push(PRESENCE_ADD.run(this.client(), this.keysOf(channel), args));
      }
    }
    await Promise.all(calls);
  }

  async presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    const calls: Array<Promise<unknown>> = [];
    for (const [channel, group] of groupByChannel(items)) {
      for (const part of chunks(group)) {
        calls.push(PRESENCE_REMOVE.run(this.client(), this.keysOf(channel), part.map((i) => i.session)));
      }
    }
    await Promise.all(calls);
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    const reply = await PRESENCE_LIST.run(this.client(), this.keysOf(channel), []);
    const entries: PresenceEntry[] = [];
    if (!Array.isArray(reply)) return entries;
    for (const text of reply) {
      try {
        const e: unknown = JSON.parse(String(text));
        if (isEntry(e)) entries.push({ user: e.user, session: e.session, node: e.node });
      } catch {
        // A damaged entry is skipped; it expires like any other.
      }
    }
    return entries;
  }

  private keysOf(channel: string): string[] {
    return [this.keys.presenceExpiry(channel), this.keys.presenceData(channel)];
  }
}
