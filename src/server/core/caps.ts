/**
 * Concurrent connections per client IP and per user on this node. A
 * connection holds a place from its upgrade until it ends; the tables hold
 * only addresses and users with a connection open, so they stay as large
 * as the connections are many. A node holds 100k connections: each place
 * is kept by the connection's socket in a weak table and released by the
 * close handling the connection has anyway, rather than by a closure and a
 * listener of its own, and a cap at 0 keeps nothing at all.
 */
import type { QuotaName } from './quotas.js';

export interface CapLimits {
  /** Open connections per client IP on this node; 0: no limit. */
  maxConnectionsPerIp: number;
  /** Open connections per user on this node; 0: no limit. */
  maxConnectionsPerUser: number;
}

/** The quota a connection past a cap would pass. */
export type CapName = Extract<QuotaName, 'connections_per_ip' | 'connections_per_user'>;

export class ConnectionCaps {
  private readonly ips = new Map<string, number>();
  private readonly users = new Map<string, number>();
  /** The address each connection is counted under, by the object standing for it (its socket); only while that cap is on. */
  private readonly ipOf = new WeakMap<object, string>();
  /** The user each connection is counted under, as `ipOf`. */
  private readonly userOf = new WeakMap<object, string>();

  constructor(private readonly limits: CapLimits) {}

  /**
   * Take a place for the connection `conn` of `user` from `ip`, until
   * `leave(conn)`; or the quota it would pass (then it holds none).
   */
  enter(conn: object, ip: string, user: string): CapName | undefined {
    const { maxConnectionsPerIp, maxConnectionsPerUser } = this.limits;
    if (maxConnectionsPerIp > 0 && (this.ips.get(ip) ?? 0) >= maxConnectionsPerIp) return 'connections_per_ip';
    if (maxConnectionsPerUser > 0 && (this.users.get(user) ?? 0) >= maxConnectionsPerUser) return 'connections_per_user';
    this.leave(conn);
    if (maxConnectionsPerIp > 0) count(this.ips, this.ipOf, conn, ip);
    if (maxConnectionsPerUser > 0) count(this.users, this.userOf, conn, user);
    return undefined;
  }

  /** The connection `conn` ended: its place is free (once, however often called). */
  leave(conn: object): void {
    uncount(this.ips, this.ipOf, conn);
    uncount(this.users, this.userOf, conn);
  }

  /** Addresses and users with a connection open (for tests: the tables do not grow past them). */
  get size(): { ips: number; users: number } {
    return { ips: this.ips.size, users: this.users.size };
  }
}

/** Count `conn` under `key`. */
function count(counts: Map<string, number>, keys: WeakMap<object, string>, conn: object, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
  keys.set(conn, key);
}

/** Stop counting `conn`, if it was counted. */
function uncount(counts: Map<string, number>, keys: WeakMap<object, string>, conn: object): void {
  const key = keys.get(conn);
  if (key === undefined) return;
  keys.delete(conn);
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
