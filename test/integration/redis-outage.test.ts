/**
 * A real redis-server killed (SIGKILL) and restarted in the middle of a run,
 * under two nodes with connected clients: readiness flips, the API answers
 * 503 instead of accepting what it cannot deliver, clients stay connected,
 * subscriptions come back, and every publish answered 200 is delivered —
 * or, when Redis lost its data, clients are told (`recovered: false`), never
 * left with a silent gap.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { ROUTINGS, type RoutingName } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { sleep } from '../helpers/wait.js';

let redis: RedisProcess | undefined;
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(nodes.splice(0).map((n) => n.close()));
  await redis?.stop();
  redis = undefined;
});

const readyz = async (n: SwitchboardNode) => (await fetch(n.url('/readyz'))).status;

async function cluster(
  persistence: boolean,
  routing: RoutingName,
): Promise<{ a: SwitchboardNode; b: SwitchboardNode; x: RawClient; y: RawClient }> {
  redis = await startRedis({ persistence });
  // Registry entries live 3 s: an outage longer than that outlives them.
  for (const id of ['ro-a', 'ro-b']) {
    // A short publish deadline: publishes wait 200 ms for Redis, then answer 503 (the outage lasts longer).
    nodes.push(await startNode({ ...TEST_NODE, nodeId: id, broker: redis.url, heartbeat: 1, routing, publishDeadline: 200 }));
  }
  const [a, b] = nodes as [SwitchboardNode, SwitchboardNode];
  const x = await RawClient.connect(`ws://127.0.0.1:${a.port}/ws?user=x`);
  const y = await RawClient.connect(`ws://127.0.0.1:${b.port}/ws?user=y`);
  clients.push(x, y);
  for (const c of [x, y]) expect(await c.request({ type: 'subscribe', channel: 'feed' })).toHaveProperty('result');
  return { a, b, x, y };
}

/**
 * Publish every 10 ms through alternating nodes; kill Redis after `killAt`
 * attempts and restart it after `restartAt`. Returns the offsets answered 200
 * and what readiness and the API said while Redis was down.
 */
async function run(a: SwitchboardNode, b: SwitchboardNode, killAt: number, restartAt: number, total: number, downMs = 0) {
  const acked: number[] = [];
  let refused = 0;
  let notReadySeen = false;
  for (let i = 0; i < total; i++) {
    if (i === killAt) {
      await redis!.kill();
      // Wait for readiness to flip to 503.
      await vi.waitUntil(async () => (await readyz(a)) === 503 && (await readyz(b)) === 503, { timeout: 10_000, interval: 25 });
      notReadySeen = true;
      // Pause, not a wait: the outage lasts this long.
      await sleep(downMs);
    }
    if (i === restartAt) {
      await redis!.restart();
      // Wait for readiness to come back.
      await vi.waitUntil(async () => (await readyz(a)) === 200 && (await readyz(b)) === 200, { timeout: 15_000, interval: 25 });
    }
    const r = await api((i % 2 ? a : b).url(), 'POST', '/api/publish', { channel: 'feed', data: i });
    if (r.status === 200) acked.push(r.body.offset as number);
    else {
      expect(r).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
      refused++;
    }
    // The publishers' pace.
    await sleep(10);
  }
  return { acked, refused, notReadySeen };
}

// Every routing strategy: subscriptions, registry entries and inboxes all come back.
describe.each(ROUTINGS)('Redis killed and restarted under a running cluster, %s routing', (routing) => {
  it('with persistence: nothing answered 200 is lost, clients stay connected, subscriptions come back', async () => {
    const { a, b, x, y } = await cluster(true, routing);
    // Down for longer than the registry entries live: the nodes register again before catching up.
    const { acked, refused, notReadySeen } = await run(a, b, 60, 90, 180, 3500);
    expect(notReadySeen).toBe(true);
    expect(refused).toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(100);
    for (const c of [x, y]) {
      await c.waitFor((f) => f.type === 'message', acked.length, 15_000);
      const offsets = c.messages('feed').map((m) => m.offset);
      // Every acknowledged message, once each, in order — and nothing else.
      expect(offsets).toEqual([...acked].sort((p, q) => p - q));
      expect(c.ws.readyState).toBe(c.ws.OPEN);
    }
    // Publications after the restart reached both nodes' clients: subscriptions were restored.
    expect(x.messages('feed').at(-1)?.offset).toBe(Math.max(...acked));
  }, 60_000);

  it('without persistence: the epoch changes and clients are told to recover, which says recovered: false', async () => {
    const { a, b, x, y } = await cluster(false, routing);
    const { acked } = await run(a, b, 30, 50, 80);
    // The epoch the first publish gave the channel (a read before it has none to give).
    const firstEpoch = x.messages('feed')[0]!.epoch;
    // Messages acknowledged before the kill were delivered live; the history that held them is gone.
    for (const c of [x, y]) {
      // At most 10 s for the close: the assertion below says if it did not come.
      const closed = await Promise.race([c.closed, sleep(10_000).then(() => undefined)]);
      expect(closed?.code).toBe(4104);
      expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4104, reconnect: true });
    }
    const lastSeen = x.messages('feed').at(-1)!;
    expect(lastSeen.epoch).toBe(firstEpoch);
    const again = await RawClient.connect(`ws://127.0.0.1:${a.port}/ws?user=x`);
    clients.push(again);
    const reply = await again.request({ type: 'subscribe', channel: 'feed', since: { offset: lastSeen.offset, epoch: lastSeen.epoch } });
    expect(reply).toMatchObject({ result: { recovered: false, messages: [] } });
    expect((reply as { result: { epoch: string } }).result.epoch).not.toBe(firstEpoch);
    expect(acked.length).toBeGreaterThan(40);
  }, 60_000);
});
