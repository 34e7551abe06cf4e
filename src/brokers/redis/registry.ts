/**
 * The routing registry in Redis, per channel: a set of node ids under the
 * channel's hash tag, so the routed publish script reads it in the same step
 * as it numbers the publication. No expiry: an entry lives until the node
 * unregisters or is dropped. Each entry is also listed in its node's index
 * (the channel, see `owners.ts`), written before the entry and removed after
 * it. Plain commands, auto-pipelined: one round trip per call.
 */
import { chunks } from './batches.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { eachIndexed, type IndexedByNode } from './owners.js';

export class RedisRegistry implements IndexedByNode {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
  ) {}

  async add(nodeId: string, channels: string[]): Promise<void> {
    const list = unique(channels);
    if (list.length === 0) return;
    const client = this.client();
    // In the order sent: the index, the entries, then the node named among those with entries (see `presence.ts`).
    await Promise.all([
      ...chunks(list).map((part) => client.sadd(this.keys.registeredBy(nodeId), ...part)),
      ...list.map((c) => client.sadd(this.keys.registry(c), nodeId)),
      client.sadd(this.keys.nodes, nodeId),
    ]);
  }

  async remove(nodeId: string, channels: string[]): Promise<void> {
    const list = unique(channels);
    if (list.length === 0) return;
    const client = this.client();
    await Promise.all([
      ...list.map((c) => client.srem(this.keys.registry(c), nodeId)),
      ...chunks(list).map((part) => client.srem(this.keys.registeredBy(nodeId), ...part)),
    ]);
  }

  async list(channel: string): Promise<string[]> {
    return this.client().smembers(this.keys.registry(channel));
  }

  async dropIndexed(node: string): Promise<void> {
    const index = this.keys.registeredBy(node);
    await eachIndexed(this.client, index, async (channels) => {
      const client = this.client();
      await Promise.all(channels.map((c) => client.srem(this.keys.registry(c), node)));
      await Promise.all(chunks(channels).map((part) => client.srem(index, ...part)));
    });
  }
}

function unique(channels: string[]): string[] {
  return [...new Set(channels)];
}
