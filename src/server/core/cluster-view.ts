import type { MemberFrame } from '../../protocol/index.js';

/**
 * What the core asks of the cluster (`src/cluster`), which it does not
 * import: where a live node is, whether a node is alive, and to tell the
 * other nodes of a join or leave.
 */
export interface ClusterView {
  /** The public WebSocket URL of a live node (hash-ring redirects). */
  urlOf(node: string): string | undefined;
  /** Whether a node is alive (presence reads keep the entries of live nodes). */
  isAlive(node: string): boolean;
  /** Send a `join` or `leave` to every other node (see `Members`); absent for a node on its own. */
  announce?(frame: MemberFrame): Promise<void>;
}

/** A node on its own: no other node, no redirect targets. */
export const ALONE: ClusterView = { urlOf: () => undefined, isAlive: () => true };
