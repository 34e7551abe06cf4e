/**
 * Chaos 4: slow consumers. Three clients stop reading their socket (the
 * `ws` socket paused) while messages to them keep coming. The bytes pile up
 * in the kernel and HAProxy, then in the node, which closes each of them
 * with 4101 once more than `--max-buffered-bytes` waits for it. When they
 * read again they get what was already sent, the 4101, reconnect through
 * HAProxy and recover the rest from history. Nothing is lost, for them or
 * for the clients that kept reading, who are never disconnected.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
afterAll(async () => {
  await run?.close();
}, 30_000);

/** The node's limit for this scenario (default 4 MiB): small, so that a few seconds of messages pass it. */
const MAX_BUFFERED_BYTES = 256 * 1024;
/**
 * Messages to slow users carry this much padding: about 1.7 MB/s each. Behind
 * HAProxy the node only sees its own buffer grow once the kernel buffers on
 * both sides of HAProxy are full (autotuned up to about 4 MB each here).
 */
const SLOW_PADDING = 256 * 1024;
const SLOW_USERS = 3;

describe('chaos: slow consumers that stop reading, then read again', () => {
  it('are closed with 4101, reconnect and recover; nobody loses anything', async () => {
    const slowUsers = new Set(Array.from({ length: SLOW_USERS }, (_, i) => `slow-u${i}`));
    run = await ChaosRun.start({
      name: 'slow',
      nodeArgs: ['--max-buffered-bytes', String(MAX_BUFFERED_BYTES)],
      padding: (user) => (slowUsers.has(user) ? SLOW_PADDING : 0),
      // While it does not read, a slow client hears nothing: its own heartbeat
      // must not give up first, or it would never be a slow consumer.
      clientOptions: (user) => (slowUsers.has(user) ? { heartbeatGrace: 60_000 } : {}),
    });
    const slow = run.clients.filter((c) => slowUsers.has(c.user));
    const others = run.clients.filter((c) => !slowUsers.has(c.user));
    expect(slow.length).toBe(SLOW_USERS);
    // Pause, not a wait: traffic flows for a while before the fault.
    await sleep(2000);

    const before = await run.cluster.metric('switchboard_disconnects_total', { code: '4101' });
    const pausedAt = Date.now();
    for (const c of slow) c.pause();
    // Wait for the nodes to close the slow consumers with 4101.
    await vi.waitUntil(
      async () => (await run!.cluster.metric('switchboard_disconnects_total', { code: '4101' })) - before >= SLOW_USERS,
      { timeout: 25_000, interval: 25 },
    );
    const closedAfterMs = Date.now() - pausedAt;
    run.fault('resume');
    for (const c of slow) c.resume();
    // Wait for the slow consumers to read their 4101 and reconnect.
    await vi.waitUntil(() => slow.every((c) => c.connected && c.drops.some((d) => d.code === 4101)), { timeout: 15_000, interval: 25 });
    // Pause, not a wait: traffic flows for a while after the recovery.
    await sleep(3000);
    const fig = await run.finish({ closedAfterMs });

    expectNothingLost(run, fig);
    // The clients that kept reading were never disconnected.
    expect(others.map((c) => c.drops.length)).toEqual(others.map(() => 0));
  }, 90_000);
});
