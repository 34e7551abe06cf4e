/**
 * A reconnect storm, small: 300 SDK clients on node A of three real node
 * processes over a real redis-server, each user receiving messages
 * steadily through B and C. A is killed with SIGKILL; every client comes
 * back through B or C (its `resolveUrl` picks one at random, as a load
 * balancer would), with `recovered: true` and without losing, repeating or
 * reordering a message. B and C run with a low admission limit
 * (`--max-handshakes-per-second 40`), so the storm really hits it: they
 * refuse handshakes with 503, the SDK backs off with jitter and retries,
 * and no survivor welcomes more clients in any second than its limit lets
 * through.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ClientFleet } from '../helpers/client-fleet.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { account, RoundPublisher } from '../helpers/round-publisher.js';
import { sleep } from '../helpers/wait.js';

const KEY = 'storm-key';
const CLIENTS = 300;
/** Admission on the survivors: 300 clients need at least (300 − 2 × 40 burst) / (2 × 40) ≈ 2.75 s to come back. */
const RATE = 40;
/** The bucket's burst: a second's worth (src/server/core/admission.ts). */
const BURST = RATE;
const MAX_ROUNDS = 100;
const RECONNECT_TIMEOUT_MS = 25_000;

let redis: RedisProcess;
const nodes: NodeProcess[] = [];
let fleet: ClientFleet | undefined;
let publisher: RoundPublisher | undefined;

const users = Array.from({ length: CLIENTS }, (_, i) => `storm${i}`);

async function rejected(node: NodeProcess, reason: string): Promise<number> {
  const text = await (await fetch(node.url('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_connections_rejected_total{') && l.includes(`reason="${reason}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

beforeAll(async () => {
  redis = await startRedis();
  const config = writeConfig({
    insecure: true,
    apiKeys: [KEY],
    heartbeat: 1,
    deadAfterBeats: 2,
    // Every client comes from 127.0.0.1: the per-IP limit would act as a node-wide one and hide the admission limit.
    limits: { maxConnectionsPerIpPerSecond: 0, maxHandshakesPerSecond: RATE, maxHandshakesInFlight: 20 },
  });
  const args = ['--config', config, '--broker', redis.url];
  // A takes its clients before the storm as fast as they come.
  nodes.push(await startNodeProcess('storm-a', [...args, '--max-handshakes-per-second', '0', '--max-handshakes-in-flight', '0']));
  nodes.push(...(await Promise.all(['storm-b', 'storm-c'].map((id) => startNodeProcess(id, args)))));
}, 30_000);

afterAll(async () => {
  fleet?.close();
  await publisher?.stop();
  await Promise.all(nodes.map((n) => n.kill()));
  await redis?.kill();
});

describe('reconnect storm', () => {
  it('a killed node’s clients all come back through the others, within their admission limit, losing nothing', async () => {
    const [a, b, c] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    fleet = new ClientFleet({
      users,
      firstUrl: a.ws(),
      reconnectUrls: [b.ws(), c.ws()],
      backoff: { kind: 'jitter', min: 100, max: 2000 },
      connectRate: 300,
    });
    await fleet.connectAll(15_000);
    publisher = new RoundPublisher({ users, targets: [b.url(), c.url()], apiKey: KEY, batch: 25, perSecond: 300, maxRounds: MAX_ROUNDS });
    publisher.start();
    // Pause, not a wait: traffic flows before the storm.
    await sleep(1500);

    fleet.arm();
    const killedAt = Date.now();
    await a.kill();
    const f = fleet;
    // Wait for every client to reconnect.
    await vi.waitUntil(() => f.reconnected() === CLIENTS, { timeout: RECONNECT_TIMEOUT_MS, interval: 50 });
    const allBackAfterMs = Date.now() - killedAt;
    await sleep(1000); // pause, not a wait: a little more traffic after the storm
    await publisher.stop();

    // Everything the server confirmed reaches its user, exactly once, in offset order, with its offset.
    const p = publisher;
    const expected = users.map((_, u) => p.confirmedRounds(u));
    // Wait for every confirmed message to arrive.
    await vi.waitUntil(() => f.distinctRounds().every((n, u) => n >= expected[u]!.length), { timeout: 10_000, interval: 50 });
    const records = fleet.records();
    expect(account(publisher, records)).toEqual({ lost: 0, duplicates: 0, reordered: 0, mismatched: 0 });
    expect(publisher.failed).toBe(0);
    // More than a round each: messages were published before, during and after the storm.
    expect(publisher.confirmedCount()).toBeGreaterThan(CLIENTS * 2);

    // Every client is back, on a survivor, with everything it missed recovered.
    const byNode = new Map<string, number>();
    for (const rec of records) byNode.set(rec.node ?? 'none', (byNode.get(rec.node ?? 'none') ?? 0) + 1);
    expect([...byNode.keys()].sort()).toEqual(['storm-b', 'storm-c']);
    expect(records.filter((r) => r.recovered !== true)).toEqual([]);

    // The admission limit was really hit: the survivors refused handshakes,
    // and the SDK saw those refusals as failed attempts (1006) and retried.
    let refused = 0;
    for (const n of [b, c]) for (const reason of ['handshake_rate', 'handshakes_in_flight']) refused += await rejected(n, reason);
    const failed = records.reduce((s, r) => s + r.failedAttempts, 0);
    const refusedSeen = records.reduce((s, r) => s + (r.failCodes['1006'] ?? 0), 0);
    expect(refused).toBeGreaterThan(CLIENTS / 2);
    expect(refusedSeen).toBeGreaterThan(0);
    expect(failed).toBeGreaterThanOrEqual(refusedSeen);

    // …and it bounded the rate: no survivor welcomed more in any one second
    // than its rate plus its burst (plus slack for the spread of handshake times).
    for (const node of ['storm-b', 'storm-c']) {
      const times = records.filter((r) => r.node === node).map((r) => r.reconnectedAt!).sort((x, y) => x - y);
      let worst = 0;
      for (let i = 0, j = 0; j < times.length; j++) {
        while (times[j]! - times[i]! >= 1000) i++;
        worst = Math.max(worst, j - i + 1);
      }
      expect(worst, `welcomes by ${node} in its busiest second`).toBeLessThanOrEqual(RATE + BURST + 20);
    }
    // At 2 × 40 per second after a burst of 40 each, 300 clients cannot all be back in under ~2.75 s.
    expect(allBackAfterMs).toBeGreaterThan(((CLIENTS - 2 * BURST) / (2 * RATE)) * 1000 * 0.9);
  }, 60_000);
});
