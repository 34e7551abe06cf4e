/**
 * Chaos 1: a node killed with SIGKILL under load. Its clients lose their
 * connection, reconnect through HAProxy to the two others and recover
 * everything they missed from history; the publisher's sends that hit the
 * dead node are retried elsewhere. Nothing acknowledged is lost, nothing is
 * delivered twice after de-duplication by offset, order is kept.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
afterAll(async () => {
  await run?.close();
}, 30_000);

describe('chaos: kill -9 of a node under load', () => {
  it('moves its clients to the other nodes with nothing lost or doubled', async () => {
    run = await ChaosRun.start({ name: 'kill' });
    // Pause, not a wait: traffic flows for a while before the fault.
    await sleep(2000);
    // The node holding the most clients.
    const count = (id: string) => run!.clients.filter((c) => c.node === id).length;
    const victim = run.cluster.nodes.reduce((a, b) => (count(b.id) > count(a.id) ? b : a));
    const onVictim = run.clients.filter((c) => c.node === victim.id);
    expect(onVictim.length).toBeGreaterThan(0);

    run.fault('SIGKILL');
    await victim.kill();
    // Wait for the victim's clients to reconnect elsewhere.
    await vi.waitUntil(() => onVictim.every((c) => c.connected && c.node !== victim.id), { timeout: 15_000, interval: 25 });
    // Pause, not a wait: traffic flows for a while after the recovery.
    await sleep(4000);
    const fig = await run.finish({ moved: onVictim.length });

    expectNothingLost(run, fig);
    // Every moved client came back on one of the two survivors.
    expect(run.clients.every((c) => c.connected && c.node !== victim.id)).toBe(true);
  }, 60_000);
});
