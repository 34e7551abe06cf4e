/**
 * Concurrent connections per client IP and per user on this node. A
 * connection holds a place from its upgrade until its socket closes; the
 * tables hold only addresses and users with a connection open, so they
 * stay as large as the connections are many.
 */
import type { QuotaName } from './quotas.js';

export interface CapLimits {
  /** Open connections per client IP on this node; 0: no limit. */
  maxConnectionsPerIp: number;
  /** Open connections per user on this node; 0: no limit. */
  maxConnectionsPerUser: number;
}

export class ConnectionCaps {
  private readonly ips = new Map<string, number>();
  private readonly users = new Map<string, number>();

  constructor(private readonly limits: CapLimits) {}

  /**
   * Take a place for a connection of `user` from `ip`: a function that
   * gives it back (once, however often called), or the quota it would pass.
   */
  enter(ip: string, user: string): (() => void) | Extract<QuotaName, 'connections_per_ip' | 'connections_per_user'> {
    const { maxConnectionsPerIp, maxConnectionsPerUser } = this.limits;
    if (maxConnectionsPerIp > 0 && (this.ips.get(ip) ?? 0) >= maxConnectionsPerIp) return 'connections_per_ip';
    if (maxConnectionsPerUser > 0 && (this.users.get(user) ?? 0) >= maxConnectionsPerUser) return 'connections_per_user';
    add(this.ips, ip, 1);
    add(this.users, user, 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      add(this.ips, ip, -1);
      add(this.users, user, -1);
    };
  }

  /** Addresses and users with a connection open (for tests: the tables do not grow past them). */
  get size(): { ips: number; users: number } {
    return { ips: this.ips.size, users: this.users.size };
  }
}

function add(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
