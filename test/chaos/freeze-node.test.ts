/**
 * Chaos 3: a node frozen with SIGSTOP under load, for longer than both
 * heartbeat timeouts — its clients' (server ping every 1 s + 1 s grace) and
 * the cluster's (3 missed beats of 1 s) — then thawed with SIGCONT. A frozen
 * node still holds its sockets and its kernel still accepts connections, so
 * only timeouts reveal it: the clients give up on it and reconnect through
 * HAProxy, which has stopped sending anyone there (its /readyz check times
 * out); the other nodes declare it dead. The publisher's sends that were
 * caught in it time out and are retried elsewhere with the same idempotency
 * key; the frozen node reads the originals when it wakes up, so without
 * server-side idempotency they are published twice (duplicates). Nothing
 * acknowledged may be lost.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { API_KEY } from '../helpers/chaos/auth.js';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
afterAll(async () => {
  await run?.close();
}, 30_000);

/** Node ids that `node` (by its own port) lists as alive. */
async function liveNodes(url: string): Promise<string[]> {
  const res = await fetch(`${url}/api/nodes`, { headers: { authorization: `Bearer ${API_KEY}` }, signal: AbortSignal.timeout(2000) });
  return ((await res.json()) as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id);
}

/** Longer than the client heartbeat (2 s) and the cluster's dead-node timeout (3 s). */
const MIN_FREEZE_MS = 4000;

describe('chaos: a node frozen (SIGSTOP) past the heartbeat timeouts, then thawed', () => {
  it('moves its clients away and loses nothing', async () => {
    run = await ChaosRun.start({ name: 'freeze' });
    // Pause, not a wait: traffic flows for a while before the fault.
    await sleep(2000);
    const { cluster } = run;
    const count = (id: string) => run!.clients.filter((c) => c.node === id).length;
    const victim = cluster.nodes.reduce((a, b) => (count(b.id) > count(a.id) ? b : a));
    const i = cluster.indexOf(victim.id);
    const witness = cluster.nodes.find((n) => n !== victim)!;
    const onVictim = run.clients.filter((c) => c.node === victim.id);
    expect(onVictim.length).toBeGreaterThan(0);

    run.fault('SIGSTOP');
    const frozenAt = Date.now();
    cluster.freeze(i);
    try {
      // Clients notice by their heartbeat, HAProxy by its check, the cluster by missed beats.
      await vi.waitUntil(() => onVictim.every((c) => c.connected && c.node !== victim.id), { timeout: 15_000, interval: 25 });
      await cluster.lb.waitServer(cluster.serverName(i), 'DOWN', 10_000);
      // Wait for the cluster to declare the frozen node dead.
      await vi.waitUntil(async () => !(await liveNodes(witness.url())).includes(victim.id), { timeout: 10_000, interval: 25 });
      // Pause, not a wait: the node stays frozen at least MIN_FREEZE_MS.
      await sleep(Math.max(0, MIN_FREEZE_MS - (Date.now() - frozenAt)));
    } finally {
      cluster.thaw(i);
    }
    const frozenMs = Date.now() - frozenAt;
    // Awake again: back in HAProxy's rotation and in the cluster.
    await cluster.lb.waitServer(cluster.serverName(i), 'UP', 10_000);
    // Wait for the thawed node to rejoin.
    await vi.waitUntil(async () => (await liveNodes(witness.url())).includes(victim.id), { timeout: 10_000, interval: 25 });
    // Pause, not a wait: traffic flows for a while after the recovery.
    await sleep(3000);
    const fig = await run.finish({ moved: onVictim.length, frozenMs });

    expectNothingLost(run, fig);
    expect(onVictim.every((c) => c.drops.some((d) => d.code === 4103))).toBe(true);
  }, 60_000);
});
