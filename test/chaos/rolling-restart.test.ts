/**
 * Chaos 5: a rolling restart under steady load. Each node in turn gets
 * SIGTERM: it says not ready (HAProxy takes it out), closes its clients
 * with 4100 so they reconnect elsewhere, leaves the cluster and exits 0. It
 * is started again on the same port, and the next one goes once HAProxy has
 * it back. Nothing is lost, nothing is delivered twice after de-duplication
 * by offset, order is kept.
 */
import { afterAll, describe, expect, it } from 'vitest';
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
    // Pause, not a wait: traffic flows for a while before the restarts.
    await sleep(1500);
    const { exitCodes, drained } = await run.rollingRestart();
    // Pause, not a wait: traffic flows for a while after the restarts.
    await sleep(2000);
    const fig = await run.finish({ drained: drained.join('+') });

    // Each node drained cleanly (exit 0) and had clients to move.
    expect(exitCodes).toEqual([0, 0, 0]);
    expect(drained.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(run.clients.length);
    expectNothingLost(run, fig);
  }, 90_000);
});
