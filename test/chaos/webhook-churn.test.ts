/**
 * Chaos 7: `online`/`offline` webhooks while 300 users come and go (every
 * third one sometimes with two sessions at once, on two nodes), straight to
 * the three nodes, at seeded random times. Meanwhile the backend answers
 * 500 for a while, one node is killed with SIGKILL (and started again once
 * the others saw it dead), every node is restarted in turn (SIGTERM drain,
 * start again), and the backend is down altogether for a while.
 *
 * Once everyone has left and the event log is empty, what the backend
 * accepted must be, for every user, after dropping repeated ids: online and
 * offline alternating from an online, ending offline, `ts` never going
 * back, as many onlines as the user's sessions allow (see
 * presence-events.ts); a repeated id carries the very same event, and
 * comes again only after the kill or the outage (never from a drain).
 *
 * `SWITCHBOARD_TEST_SEED=<n>` replays a run's visits (the faults' timing
 * still varies).
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prng } from '../../bench/lib/random.js';
import { api } from '../helpers/api.js';
import { API_KEY, tokenFor } from '../helpers/chaos/auth.js';
import { ChaosCluster } from '../helpers/chaos/cluster.js';
import { accountPresence, type Accepted } from '../helpers/chaos/presence-events.js';
import { record } from '../helpers/chaos/report.js';
import { Visitors } from '../helpers/chaos/visitors.js';
import { metric } from '../helpers/metrics.js';
import type { NodeProcess } from '../helpers/node-process.js';
import { sleep } from '../helpers/wait.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'chaos-webhook-secret-0123456789abcdef';
const USERS = Array.from({ length: 300 }, (_, i) => `hook-u${i}`);
/** The chaos cluster's detection time: --heartbeat 1 × --dead-after-beats 3. */
const DETECTION_MS = 3000;
/** How late a node may apply an open or a close beyond what its client saw, on this loaded machine. */
const SLACK_MS = 1000;
/** Away times of the steady users: longer than the slack, so that the truth of their gaps is known. */
const STEADY_AWAY_MS = [SLACK_MS + 1500, SLACK_MS + 3000] as const;
/** Away times of the hasty users: back at once, often before their close is applied. */
const HASTY_AWAY_MS = [0, 400] as const;
/** How long the backend answers 500, then how long it is down. */
const OUTAGE_MS = 3000;
/** Everything is over within this: no visit starts later, whatever happens to the faults. */
const CHURN_CAP_MS = 75_000;
/** Waiting, after everyone left, for the log to empty and every user's `offline`. */
const SETTLE_MS = 30_000;

let cluster: ChaosCluster | undefined;
let receiver: WebhookReceiver | undefined;
let visitors: Visitors | undefined;
afterAll(async () => {
  visitors?.stopAt(0);
  await visitors?.finish();
  await cluster?.stop();
  await receiver?.close();
}, 30_000);

const running = (n: NodeProcess): boolean => n.proc.exitCode === null && n.proc.signalCode === null;

/** Each repeated delivery: the id, when it was first delivered and when again (ms since the epoch). */
function repeats(all: readonly Accepted[]): Array<{ id: string; first: number; again: number }> {
  const first = new Map<string, number>();
  const out: Array<{ id: string; first: number; again: number }> = [];
  for (const { event, at } of all) {
    const was = first.get(event.id);
    if (was === undefined) first.set(event.id, at);
    else out.push({ id: event.id, first: was, again: at });
  }
  return out;
}

type Span = { from: number; until: number };
const within = (t: number, spans: readonly Span[]): boolean => spans.some((w) => t >= w.from && t <= w.until);

/** What the backend accepted (answered 200), each event with its request's arrival. */
function accepted(r: WebhookReceiver): Accepted[] {
  return r.requests.filter((q) => q.status === 200).flatMap((q) => q.events.map((event) => ({ event, at: q.at })));
}

describe('chaos: webhook events while users come and go, through kill -9, a rolling restart and a backend outage', () => {
  it('reports every transition, alternating and in order per user, repeats only under the same id', async () => {
    const seed = Number(process.env.SWITCHBOARD_TEST_SEED ?? Date.now() % 100_000);
    const startedAt = Date.now();
    receiver = await WebhookReceiver.start(SECRET);
    const hook = receiver;
    cluster = await ChaosCluster.start({
      name: 'hook',
      // Raw clients answer pings from this process, which 300 users and the backend keep busy: a slow pong must not close them.
      nodeArgs: ['--webhook', hook.url, '--webhook-secret', SECRET, '--webhook-batch', '20', '--ping', '5', '--pong-timeout', '10'],
    });
    const c = cluster;
    /** Nodes that take new sessions: a node leaves this set before its fault. */
    const up = new Set(c.nodes);
    visitors = new Visitors({
      users: USERS,
      random: prng(seed),
      nodes: () => c.nodes.filter((n) => up.has(n)),
      token: tokenFor,
      // Every third user sometimes opens two sessions; every third is hasty.
      twoSessions: (user) => USERS.indexOf(user) % 3 === 0,
      awayMs: (user) => (USERS.indexOf(user) % 3 === 2 ? HASTY_AWAY_MS : STEADY_AWAY_MS),
      stayMs: [300, 4000],
      until: Date.now() + CHURN_CAP_MS,
      maxVisits: 60,
      detectionMs: DETECTION_MS,
      slackMs: SLACK_MS,
    });
    const v = visitors;
    v.start();

    // Pause, not a wait: users come and go for a while, then the backend fails for a while.
    await sleep(1500);
    hook.status = 500;
    await sleep(OUTAGE_MS);
    hook.status = 200;

    // kill -9, and a start again once both others saw it dead (a restart within the detection time is not this scenario).
    const victim = c.nodes[0]!;
    up.delete(victim);
    v.killed(victim);
    const killedAt = Date.now();
    await victim.kill();
    const goneAt = Date.now();
    for (const other of c.nodes.slice(1)) {
      await vi.waitFor(async () => {
        const { body } = await api(other.url(), 'GET', '/api/nodes', undefined, API_KEY);
        expect((body.nodes as Array<{ id: string }>).map((n) => n.id)).not.toContain(victim.id);
      }, { timeout: DETECTION_MS + 5000, interval: 100 });
    }
    v.seenDead(victim);
    up.add(await c.restart(0));

    // A rolling restart: each node drains (4100 to its clients) and starts again on its port.
    const exitCodes: Array<number | null> = [];
    const drains: Span[] = [];
    for (let i = 0; i < c.nodes.length; i++) {
      const node = c.nodes[i]!;
      up.delete(node);
      v.draining(node);
      const from = Date.now();
      await node.stop(15_000);
      drains.push({ from, until: Date.now() });
      exitCodes.push(node.proc.exitCode);
      up.add(await c.restart(i));
    }

    // The backend is down (connections refused) for a while.
    const downAt = Date.now();
    await hook.down();
    // Pause, not a wait: the outage is the point.
    await sleep(OUTAGE_MS);
    await hook.up();
    // Pause, not a wait: users come and go a while longer.
    await sleep(2000);
    v.stopAt(Date.now());
    await v.finish();
    const failedWhileDown = await c.metric('switchboard_events_failed_total');

    // Everyone has left: wait (bounded) until no event waits and every user's last accepted event is an offline.
    const settled = async (): Promise<boolean> => {
      for (const n of c.nodes.filter(running)) if ((await metric(n.url('/metrics'), 'switchboard_events_pending')) !== 0) return false;
      return accountPresence(v.spans(), accepted(hook)).notOffline === 0;
    };
    await vi.waitUntil(settled, { timeout: SETTLE_MS, interval: 250 }).catch(() => undefined); // the assertions below say what is missing
    // Pause, not a wait: listen this long for late repeats.
    await sleep(1000);

    const acc = accountPresence(v.spans(), accepted(hook));
    // A repeat is allowed where a node died after the backend's answer and before it forgot the events (the kill), or
    // where the answer was lost (the outage cut connections); a drain hands its partitions over without any.
    const repeated = repeats(accepted(hook));
    // (This process records a request when it gets to it: on a loaded machine, some way after it arrived.)
    const faultWindows = [
      { from: killedAt - 1000, until: goneAt + 1000 },
      { from: downAt - 1000, until: downAt + 1000 },
    ];
    const drainRepeats = repeated.filter((r) => within(r.first, drains));
    const otherRepeats = repeated.filter((r) => !within(r.first, faultWindows));
    const endings = v.endings();
    const refused = hook.requests.filter((q) => q.status === 500).reduce((n, q) => n + q.events.length, 0);
    const figure = {
      scenario: 'webhook-churn',
      seed,
      users: acc.users,
      sessions: v.visits.length,
      visitsOnTwoNodes: v.doubled,
      endings,
      transitions: acc.transitions,
      duplicates: acc.duplicates,
      duplicatesFromDrains: drainRepeats.length,
      duplicatesElsewhere: otherRepeats.length,
      exactUsers: acc.exact,
      retries: { answered500: refused, failedAfterRestart: failedWhileDown },
      maxDelayMs: acc.maxDelayMs,
      problems: { altered: acc.altered, doubled: acc.doubled, outOfOrder: acc.outOfOrder, notOffline: acc.notOffline, miscounted: acc.miscounted },
      durationMs: Date.now() - startedAt,
      date: new Date().toISOString(),
    };
    record(
      figure,
      `chaos webhook-churn (seed ${seed}): users ${acc.users}, sessions ${v.visits.length} (${v.doubled} visits on two nodes; killed ${endings.killed}, drained ${endings.drained}), ` +
        `transitions ${acc.transitions}, duplicates ${acc.duplicates} (${drainRepeats.length} from drains, ${otherRepeats.length} not from the kill or the outage), retries ${refused} answered 500 + ${failedWhileDown} failed while down, ` +
        `max delay ${acc.maxDelayMs} ms, exact truth for ${acc.exact} users, problems ${acc.problems.length}, ${figure.durationMs} ms`,
    );

    const problems = `seed ${seed}\n${acc.problems.slice(0, 20).join('\n')}`;
    // The load was real: most users came, many visits were on two nodes at once, sessions were cut by both faults.
    expect(acc.users).toBeGreaterThan(USERS.length * 0.9);
    expect(v.doubled).toBeGreaterThan(100);
    expect(endings.killed).toBeGreaterThan(0);
    expect(endings.drained).toBeGreaterThan(0);
    expect(v.unexpected(), 'sessions closed by nothing the test did').toEqual({});
    expect(exitCodes).toEqual([0, 0, 0]);
    // The backend's failures made the nodes retry.
    expect(refused).toBeGreaterThan(0);
    expect(failedWhileDown).toBeGreaterThan(0);
    expect(hook.requests.every((q) => q.signed)).toBe(true);
    // The verdict.
    expect(acc.altered, problems).toBe(0);
    expect(acc.doubled, problems).toBe(0);
    expect(acc.outOfOrder, problems).toBe(0);
    expect(acc.notOffline, problems).toBe(0);
    expect(acc.miscounted, problems).toBe(0);
    expect(acc.transitions).toBeGreaterThanOrEqual(2 * acc.users);
    // Repeats only where the contract allows them (docs/backend.md: a node that died or stalled after the answer).
    const shown = (list: typeof repeated): string[] => list.slice(0, 20).map((r) => `${r.id} ${r.first - startedAt}→${r.again - startedAt} ms`);
    expect(shown(drainRepeats), `repeats first delivered during a drain (seed ${seed})`).toEqual([]);
    expect(shown(otherRepeats), `repeats not from the kill (${killedAt - startedAt} ms) or the outage (${downAt - startedAt} ms) (seed ${seed})`).toEqual([]);
    // The truth was exact for many users (most steady ones), so their counts were checked, not just bounded.
    expect(acc.exact).toBeGreaterThan(acc.users / 3);
  }, 120_000);
});
