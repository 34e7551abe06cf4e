/**
 * What the core asks of the cluster (`src/cluster`), which it does not
 * import: where a live node is, and whether a node is alive.
 */
export interface ClusterView {
  /** The public WebSocket URL of a live node (hash-ring redirects). */
  urlOf(node: string): string | undefined;
  /** Whether a node is alive (presence reads keep the entries of live nodes). */
  isAlive(node: string): boolean;
}

/** A node on its own: no other node, no redirect targets. */
export const ALONE: ClusterView = { urlOf: () => undefined, isAlive: () => true };
