// Hash-ring moves: users moved when a 5th node joins and leaves, computed
// with `HashRing` and measured on a live cluster.
import type { DisconnectFrame } from '../../src/protocol/index.js';
import { HashRing } from '../../src/server/routing/ring.js';
import { startRedis } from '../../test/helpers/redis-server.js';
import { type Args, CONNECT_CONCURRENCY, MOVE_HEARTBEAT_S, MOVE_TIMEOUT_MS, QUIET_BEATS, RECONNECT_ATTEMPTS, RECONNECT_BACKOFF_MS, RING_KEYS, RING_VNODES, STRATEGIES } from './settings.js';
import { nodeId, userName } from './traffic.js';
import { http } from '../lib/http.js';
import { type BenchNode, metric, spawnNode, stopNode, waitMembership } from '../lib/nodes.js';
import { pooled } from '../lib/pool.js';
import { sleep, waitUntil } from '../lib/wait.js';
import { BenchClient, connectFollowing, routeUrl, withUser } from './clients.js';

/** Share of keys whose owner differs between two rings. */
function movedShare(a: HashRing, b: HashRing, keys: string[]): number {
  let moved = 0;
  for (const k of keys) if (a.owner(k) !== b.owner(k)) moved++;
  return moved / keys.length;
}

/** Largest node's share of keys × N: 1.00 is a perfectly even ring. */
function imbalance(ring: HashRing, keys: string[]): number {
  const per = new Map<string, number>();
  for (const k of keys) {
    const o = ring.owner(k) ?? '';
    per.set(o, (per.get(o) ?? 0) + 1);
  }
  return (Math.max(...per.values()) * ring.size) / keys.length;
}

export interface MovedResult {
  computed: { keys: number; join: number; leave: number; imbalance4: number; imbalance5: number };
  /** The same computation over the bench's own user ids. */
  computedBenchUsers: { keys: number; join: number; leave: number };
  measured: {
    users: number;
    /** Users closed with 4102 after the 5th node joined (each once). */
    join: number;
    /** Users closed (4100 by the drain, or 4102) after the 5th node was stopped. */
    leave: number;
    leaveCodes: Record<string, number>;
    /** `switchboard_sessions_moved_total` over the nodes, join phase. */
    movedMetricJoin: number;
    /** Users not on their ring owner at the end of each phase. */
    offOwner: { start: number; afterJoin: number; afterLeave: number };
    joinMs: number;
    leaveMs: number;
  };
}

export function computedMoves(userIds: string[]): Pick<MovedResult, 'computed' | 'computedBenchUsers'> {
  const four = new HashRing([0, 1, 2, 3].map(nodeId), RING_VNODES);
  const five = new HashRing([0, 1, 2, 3, 4].map(nodeId), RING_VNODES);
  const keys = Array.from({ length: RING_KEYS }, (_, i) => `user-${i}`);
  return {
    computed: {
      keys: keys.length,
      join: movedShare(four, five, keys),
      leave: movedShare(five, four, keys),
      imbalance4: imbalance(four, keys),
      imbalance5: imbalance(five, keys),
    },
    computedBenchUsers: { keys: userIds.length, join: movedShare(four, five, userIds), leave: movedShare(five, four, userIds) },
  };
}

/**
 * U users on their owners among 4 nodes; a 5th joins, later drains. Each
 * closed user reconnects at once (4102: the URL it was given; otherwise:
 * `/api/route` on a node that stays), as the SDK does.
 */
export async function measuredMoves(args: Args, config: string): Promise<MovedResult['measured']> {
  const redis = await startRedis();
  const nodes: BenchNode[] = [];
  const clients = new Map<number, BenchClient>();
  const nodeArgs = ['--config', config, '--broker', redis.url, ...STRATEGIES.hashring.args, '--heartbeat', String(MOVE_HEARTBEAT_S)];
  let phase: 'join' | 'leave' = 'join';
  const closed: Record<'join' | 'leave', Set<number>> = { join: new Set(), leave: new Set() };
  const leaveCodes: Record<string, number> = {};
  let lastEvent = 0;
  let reconnecting = 0;
  let reconnectFailures = 0;
  const stays = (): BenchNode[] => nodes.filter((n) => n.id !== nodeId(4));

  const reconnect = async (user: number, f: DisconnectFrame): Promise<void> => {
    for (let attempt = 1; attempt <= RECONNECT_ATTEMPTS; attempt++) {
      try {
        const home = stays()[user % 4]!;
        const url = f.code === 4102 && f.url && attempt === 1 ? withUser(f.url, user) : await routeUrl(home, user);
        adopt(user, await connectFollowing(url, user));
        return;
      } catch {
        await sleep(RECONNECT_BACKOFF_MS);
      }
    }
    reconnectFailures++;
  };
  const adopt = (user: number, c: BenchClient): void => {
    clients.set(user, c);
    c.onDisconnect = (f) => {
      lastEvent = Date.now();
      closed[phase].add(user);
      if (phase === 'leave') leaveCodes[f.code] = (leaveCodes[f.code] ?? 0) + 1;
      reconnecting++;
      void reconnect(user, f).finally(() => {
        reconnecting--;
        lastEvent = Date.now();
      });
    };
  };
  const offOwner = (ids: string[]): number => {
    const ring = new HashRing(ids, RING_VNODES);
    return [...clients.values()].filter((c) => ring.owner(userName(c.index)) !== c.node).length;
  };
  /** Until no disconnect and no reconnect for `QUIET_BEATS` heartbeats. */
  const settle = async (what: string): Promise<void> => {
    const quiet = QUIET_BEATS * MOVE_HEARTBEAT_S * 1000;
    const ok = await waitUntil(() => reconnecting === 0 && Date.now() - lastEvent > quiet, MOVE_TIMEOUT_MS);
    if (!ok) throw new Error(`${what}: still moving after ${MOVE_TIMEOUT_MS} ms (${reconnecting} reconnecting)`);
    if (reconnectFailures > 0) throw new Error(`${what}: ${reconnectFailures} users could not reconnect`);
  };

  try {
    const four = [0, 1, 2, 3].map(nodeId);
    for (const s of await Promise.allSettled(four.map((id) => spawnNode(id, nodeArgs)))) {
      if (s.status === 'fulfilled') nodes.push(s.value);
      else throw s.reason;
    }
    await waitMembership(nodes, four);
    await pooled(
      Array.from({ length: args.users }, (_, i) => i),
      CONNECT_CONCURRENCY,
      async (u) => adopt(u, await connectFollowing(await routeUrl(nodes[u % 4]!, u), u)),
    );
    const start = offOwner(four);
    const movedBefore = await movedTotal(nodes);

    const joinStarted = performance.now();
    lastEvent = Date.now();
    nodes.push(await spawnNode(nodeId(4), nodeArgs));
    const five = [...four, nodeId(4)];
    await waitMembership(nodes, five);
    await settle('join');
    const joinMs = performance.now() - joinStarted - QUIET_BEATS * MOVE_HEARTBEAT_S * 1000;
    const afterJoin = offOwner(five);
    const movedMetricJoin = (await movedTotal(nodes)) - movedBefore;

    phase = 'leave';
    const leaveStarted = performance.now();
    lastEvent = Date.now();
    await stopNode(nodes[4]!);
    await waitMembership(stays(), four);
    await settle('leave');
    const leaveMs = performance.now() - leaveStarted - QUIET_BEATS * MOVE_HEARTBEAT_S * 1000;
    const afterLeave = offOwner(four);

    return {
      users: args.users,
      join: closed.join.size,
      leave: closed.leave.size,
      leaveCodes,
      movedMetricJoin,
      offOwner: { start, afterJoin, afterLeave },
      joinMs,
      leaveMs,
    };
  } finally {
    for (const c of clients.values()) {
      c.onDisconnect = undefined;
      c.close();
    }
    await Promise.all(nodes.map(stopNode));
    await redis.stop();
  }
}

async function movedTotal(nodes: BenchNode[]): Promise<number> {
  const texts = await Promise.all(nodes.map(async (n) => (await http('GET', n.port, '/metrics')).text));
  return texts.reduce((s, t) => s + metric(t, 'switchboard_sessions_moved_total'), 0);
}
