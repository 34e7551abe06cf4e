/**
 * `--write-delay`: a socket's fan-out frames wait that long after the first
 * of them, so publications arriving meanwhile leave in one write; order and
 * exactly-once hold, and the session's own replies still come.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';

const DELAY_MS = 100;
let node: SwitchboardNode;
let client: RawClient;

beforeAll(async () => {
  node = await startNode({ ...TEST_NODE, writeDelay: DELAY_MS });
  client = await RawClient.connect(`ws://127.0.0.1:${node.port}/ws?user=ann`);
});
afterAll(async () => {
  await client.close();
  await node.close();
});

it('holds fan-out frames for the delay, then sends the publications of that time together and in order', async () => {
  expect(await client.request({ type: 'subscribe', channel: 'room:1' })).toHaveProperty('result');
  const arrivals: number[] = [];
  client.ws.on('message', () => arrivals.push(performance.now()));
  const start = performance.now();
  for (let n = 1; n <= 3; n++) await node.publish('room:1', { n });
  await client.waitFor((f) => f.type === 'message', 3);
  expect(client.messages('room:1').map((m) => [m.offset, m.data])).toEqual([
    [1, { n: 1 }],
    [2, { n: 2 }],
    [3, { n: 3 }],
  ]);
  // Without the delay the first frame leaves at the end of the publishing tick, a millisecond or so after it.
  expect(arrivals[0]! - start).toBeGreaterThanOrEqual(DELAY_MS - 10);
  // The three publications were made well within the delay: one flush carried them.
  expect(arrivals[2]! - arrivals[0]!).toBeLessThan(DELAY_MS / 2);
  // The session's own frames are answered as before.
  expect(await client.request({ type: 'subscribe', channel: 'room:2' })).toHaveProperty('result');
});
