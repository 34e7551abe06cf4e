/**
 * The answer of `GET /api/admin/cluster`: every live node as its last
 * heartbeat describes it (this node fresh), totals over them and, under
 * hash-ring routing, the share of users each node owns.
 */
import type { AdminClusterAnswer, NodeInfo } from '../../protocol/index.js';
import type { HashRing } from '../routing/ring.js';

/** The shape is the server API's (`src/protocol/api.ts`). */
export type ClusterView = AdminClusterAnswer;

/** User ids sampled to measure ring shares: 1/sqrt(4096) ≈ 1.6 % of sampling error, a few ms of MD5. */
const RING_SAMPLES = 4096;

/** Ring shares of the last ring seen: the ring only changes when a node joins or dies. */
let cached: { ring: HashRing; shares: Map<string, number> } | undefined;

/**
 * The fraction of user ids each node of `ring` owns, measured on sample ids
 * through `owner()` (the very function that routes users) rather than
 * recomputed from the ring's points, so it cannot drift from the routing.
 */
export function ringShares(ring: HashRing): Map<string, number> {
  if (cached?.ring === ring) return cached.shares;
  const counts = new Map<string, number>(ring.nodes.map((n) => [n, 0]));
  for (let i = 0; i < RING_SAMPLES; i++) {
    const owner = ring.owner(`user-${i}`);
    if (owner !== undefined) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  const shares = new Map([...counts].map(([n, c]) => [n, Math.round((c / RING_SAMPLES) * 1000) / 1000]));
  cached = { ring, shares };
  return shares;
}

export function clusterView(self: string, routing: string, nodes: NodeInfo[], ring: HashRing | undefined): ClusterView {
  const shares = ring ? ringShares(ring) : undefined;
  const listed = nodes.map((n) => (shares ? { ...n, ringShare: shares.get(n.id) ?? 0 } : n));
  const sum = (f: (n: NodeInfo) => number | undefined): number =>
    Math.round(listed.reduce((s, n) => s + (f(n) ?? 0), 0) * 100) / 100;
  return {
    node: self,
    at: Date.now(),
    routing,
    nodes: listed,
    totals: {
      nodes: listed.length,
      ready: listed.filter((n) => n.ready).length,
      connections: sum((n) => n.connections),
      subscriptions: sum((n) => n.subscriptions),
      messagesInPerSec: sum((n) => n.messagesInPerSec),
      messagesOutPerSec: sum((n) => n.messagesOutPerSec),
    },
  };
}
