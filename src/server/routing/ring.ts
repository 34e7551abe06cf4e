/**
 * A consistent-hash ring with virtual nodes. Each node is placed at
 * `vnodes` points (the first 32 bits of MD5 of `<node>#<i>`); a key belongs
 * to the node of the first point at or after the key's own hash, wrapping
 * around. Adding or removing one node of N moves only the keys between its
 * points and their predecessors: about 1/N of them.
 */
import { createHash } from 'node:crypto';

/** The first 32 bits of MD5, as an unsigned integer: evenly spread, stable across processes and versions. */
export function hash32(text: string): number {
  return createHash('md5').update(text).digest().readUInt32BE(0);
}

export class HashRing {
  /** Point positions, ascending. */
  private readonly points: Uint32Array;
  /** `owners[i]` is the node at `points[i]`. */
  private readonly owners: string[];
  /** The nodes on the ring, sorted. */
  readonly nodes: readonly string[];

  constructor(nodes: Iterable<string>, vnodes = 160) {
    if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError(`vnodes must be a positive integer, got ${vnodes}`);
    this.nodes = [...new Set(nodes)].sort();
    const placed: Array<{ at: number; node: string }> = [];
    for (const node of this.nodes) {
      for (let i = 0; i < vnodes; i++) placed.push({ at: hash32(`${node}#${i}`), node });
    }
    // Ties (rare) are broken by node id, so every process builds the same ring.
    placed.sort((a, b) => a.at - b.at || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    this.points = Uint32Array.from(placed, (p) => p.at);
    this.owners = placed.map((p) => p.node);
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Whether both rings hold the same nodes (then they assign every key alike). */
  sameNodes(other: HashRing): boolean {
    return this.nodes.length === other.nodes.length && this.nodes.every((n, i) => n === other.nodes[i]);
  }

  /** The node that owns `key`; undefined on an empty ring. */
  owner(key: string): string | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const h = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo];
  }
}
