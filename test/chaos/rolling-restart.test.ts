/**
 * Chaos 5: a rolling restart under steady load. Each node in turn gets
 * SIGTERM: it says not ready (HAProxy takes it out), closes its clients
 * with 4100 so they reconnect elsewhere, leaves the cluster and exits 0. It
 * is started again on the same port, and the next one goes once HAProxy has
 * it back. Nothing is lost, nothing is delivered twice after de-duplication
 * by offset, order is kept.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
afterAll(async () => {
  await run?.close();
}, 30_000);

describe('chaos: rolling restart (SIGTERM, start again, next) under load', () => {
  it('drains each node to the others with nothing lost or doubled', async () => {
    run = await ChaosRun.start({ name: 'rolling' });
    const { cluster } = run;
    // Pause, not a wait: traffic flows for a while before the restarts.
    await sleep(1500);
    const drained: number[] = [];
    const exitCodes: Array<number | null> = [];
    for (let i = 0; i < cluster.nodes.length; i++) {
      const node = cluster.nodes[i]!;
      const onIt = run.clients.filter((c) => c.node === node.id);
      run.fault(`SIGTERM ${node.id}`);
      await node.stop(15_000);
      exitCodes.push(node.proc.exitCode);
      await vi.waitUntil(() => onIt.every((c) => c.connected && c.drops.some((d) => d.code === 4100)), { timeout: 15_000, interval: 25 });
      drained.push(onIt.length);
      await cluster.restart(i);
      // Pause, not a wait: traffic flows for a while between restarts.
      await sleep(1000);
    }
    // Pause, not a wait: traffic flows for a while after the restarts.
    await sleep(2000);
    const fig = await run.finish({ drained: drained.join('+') });

    // Each node drained cleanly (exit 0) and had clients to move.
    expect(exitCodes).toEqual([0, 0, 0]);
    expect(drained.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(run.clients.length);
    expectNothingLost(run, fig);
  }, 90_000);
});
