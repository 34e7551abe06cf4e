/**
 * Chaos 2: the cluster's Redis killed with SIGKILL under load and started
 * again. While it is down every node's /readyz says 503, so HAProxy takes
 * them all out of rotation and the publisher's sends get 503 and are
 * retried; connected clients stay connected.
 *
 * (a) With persistence (AOF fsynced on every write) nothing acknowledged is
 *     lost: the nodes catch their clients up from history.
 * (b) Without persistence history and offsets are gone (new epochs): the
 *     nodes close their clients with 4104, and each client is told
 *     `recovered: false` (the SDK's `reset`). Loss is allowed only where the
 *     app was told.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
afterEach(async () => {
  await run?.close();
  run = undefined;
}, 30_000);

/** Kill Redis, keep it down `downMs`, start it again, and wait until HAProxy has every node back. */
async function outage(r: ChaosRun, downMs: number): Promise<void> {
  const { cluster } = r;
  r.fault('redis SIGKILL');
  await cluster.redis.kill();
  // Every node says it is not ready, and HAProxy takes every one out.
  // Wait for HAProxy to mark every node DOWN.
  await vi.waitUntil(async () => (await cluster.lb.servers()).every((s) => s.status === 'DOWN'), { timeout: 10_000, interval: 25 });
  // Pause, not a wait: the outage lasts this long.
  await sleep(downMs);
  await cluster.redis.restart();
  for (let i = 0; i < cluster.nodes.length; i++) await cluster.lb.waitServer(cluster.serverName(i), 'UP', 15_000);
}

describe('chaos: Redis killed and restarted under load', () => {
  it('with persistence: nothing acknowledged is lost, clients stay connected', async () => {
    run = await ChaosRun.start({ name: 'redis-aof', persistence: true });
    // Pause, not a wait: traffic flows for a while before the fault.
    await sleep(2000);
    await outage(run, 1000);
    // Pause, not a wait: traffic flows for a while after the outage.
    await sleep(3000);
    const fig = await run.finish();

    expectNothingLost(run, fig);
    // Sends during the outage were refused (503) and retried.
    expect(fig.publisher.retries).toBeGreaterThan(0);
    // Nobody was disconnected: the outage was invisible to clients but for a pause.
    expect(run.clients.map((c) => c.drops.length)).toEqual(run.clients.map(() => 0));
  }, 60_000);

  it('without persistence: every client is told recovered: false, and nothing is lost untold', async () => {
    run = await ChaosRun.start({ name: 'redis-mem', persistence: false });
    // Pause, not a wait: traffic flows for a while before the fault.
    await sleep(2000);
    await outage(run, 1000);
    // Each client is closed with 4104 and comes back told that recovery failed.
    // Wait for every client to be told recovered: false (a timeout names the ones still waited for).
    await vi.waitFor(
      () =>
        expect(
          run!.clients.filter((c) => !(c.toldNotRecovered > 0 && c.connected)).map((c) => `${c.user} (${c.client.state}, told ${c.toldNotRecovered}, drops ${c.drops.map((d) => d.code).join('/')})`),
        ).toEqual([]),
      { timeout: 15_000, interval: 25 },
    );
    // Pause, not a wait: traffic flows for a while after the recovery.
    await sleep(3000);
    const told = run.clients.filter((c) => c.toldNotRecovered > 0).length;
    const fig = await run.finish({ told });

    // Loss is allowed only where a reset told the app; the rest is checked as everywhere.
    expectNothingLost(run, fig, { resetsAllowed: true });
    expect(told).toBe(run.clients.length);
    expect(run.clients.every((c) => c.drops.some((d) => d.code === 4104))).toBe(true);
    expect(fig.resets).toBeGreaterThanOrEqual(run.clients.length);
  }, 60_000);
});
