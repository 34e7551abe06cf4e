/**
 * A busy publisher is slowed, not refused: 5000 publish frames written at
 * once on one connection, to a node over a real redis-server, all get their
 * offsets in order per channel. The node stops reading the socket while too
 * much of its work is at the broker, and TCP holds the rest at the client
 * (before, 4000 of them were refused with `rate_limited`).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServerFrame } from '../../src/protocol/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

let redis: RedisProcess | undefined;
let node: SwitchboardNode | undefined;

beforeAll(async () => {
  redis = await startRedis();
  node = await startNode({ ...TEST_NODE, broker: redis.url, limits: { maxMessagesPerSecond: 1_000_000 } });
}, 30_000);
afterAll(async () => {
  await node?.close();
  await redis?.stop();
});

it('answers every one of 5000 publishes written at once, none refused, in order per channel', async () => {
  const c = await RawClient.connect(`ws://127.0.0.1:${node!.port}/ws?user=busy`);
  const total = 5000;
  for (let i = 0; i < total; i++) c.send({ type: 'publish', id: 100 + i, channel: `busy${i % 50}`, data: { i } });
  const isReply = (f: ServerFrame): f is Extract<ServerFrame, { type: 'reply' }> => f.type === 'reply' && f.id >= 100;
  await c.waitFor(isReply, total, 30_000);
  const replies = c.frames.filter(isReply);
  expect(replies.filter((r) => 'error' in r)).toEqual([]);
  const offsets = new Map<number, number[]>();
  for (const r of replies.sort((x, y) => x.id - y.id)) {
    const lane = (r.id - 100) % 50;
    offsets.set(lane, [...(offsets.get(lane) ?? []), (r as { result: { offset: number } }).result.offset]);
  }
  for (const list of offsets.values()) expect(list).toEqual(list.map((_, k) => k + 1));
  await c.close();
}, 60_000);
