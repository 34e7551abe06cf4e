/**
 * The routing registry in Redis, per channel: a sorted set node id → expiry
 * time (ms, server clock) under the channel's hash tag, so the routed publish
 * script reads it in the same step as it numbers the publication. Entries
 * expire unless registered again; calls for several channels go out together
 * (auto-pipelined, one command per channel).
 */
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { REGISTER, REGISTRY_LIST } from './scripts.js';

export class RedisRegistry {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
  ) {}

  async add(nodeId: string, channels: string[], ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    await Promise.all(unique(channels).map((c) => REGISTER.run(this.client(), [this.keys.registry(c)], [ttl, nodeId])));
  }

  async remove(nodeId: string, channels: string[]): Promise<void> {
    await Promise.all(unique(channels).map((c) => this.client().zrem(this.keys.registry(c), nodeId)));
  }

  async list(channel: string): Promise<string[]> {
    const reply = await REGISTRY_LIST.run(this.client(), [this.keys.registry(channel)], []);
    return Array.isArray(reply) ? reply.map(String) : [];
  }
}

function unique(channels: string[]): string[] {
  return [...new Set(channels)];
}
