/**
 * Acknowledged positions in Redis (offline delivery): one string per channel
 * and reader, `<offset>:<epoch>`, under the channel's hash tag, expiring
 * after the TTL given at the last save. The save script keeps the position
 * monotonic within an epoch, whichever node saves.
 */
import type { StreamPosition } from '../../protocol/index.js';
import type { Store } from '../broker.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';
import { SAVE_ACK } from './scripts.js';

/** The acks part of the Redis store. */
export class RedisAcks implements Pick<Store, 'saveAck' | 'loadAck'> {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
  ) {}

  async saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    await SAVE_ACK.run(this.client(), [this.keys.ack(channel, reader)], [position.epoch, Math.max(0, Math.floor(position.offset)), Math.max(1, Math.ceil(ttlMs))]);
  }

  async loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    return decodeAck(await this.client().get(this.keys.ack(channel, reader)), channel);
  }
}

/** A kept position, `<offset>:<epoch>`, back into a position (null: none kept). */
export function decodeAck(kept: string | null, channel: string): StreamPosition | null {
  if (kept === null || kept === '') return null;
  const sep = kept.indexOf(':');
  const offset = Number(kept.slice(0, sep));
  if (sep < 1 || !Number.isSafeInteger(offset)) throw new Error(`unreadable acknowledged position ${JSON.stringify(kept)} for ${channel}`);
  return { offset, epoch: kept.slice(sep + 1) };
}
