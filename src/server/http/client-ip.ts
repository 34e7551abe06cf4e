/**
 * The client address that per-IP limits count.
 *
 * Behind a load balancer every connection arrives from the balancer's
 * address, so without `trustProxy` all its clients share one per-IP budget.
 * With `trustProxy` the address is the LAST entry of `X-Forwarded-For`: the
 * one the proxy in front of the node appended (nginx's
 * `$proxy_add_x_forwarded_for`). The entries before it are whatever the
 * client sent and could be forged to dodge the limit, or to spend another
 * address's budget.
 */

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client (a dual-stack socket reports the first, a proxy the second). */
function normalize(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The last non-empty entry of the `X-Forwarded-For` header(s), if any. */
export function lastForwarded(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const entries = (Array.isArray(header) ? header.join(',') : header).split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]?.trim();
    if (entry) return entry;
  }
  return undefined;
}

/** The address to count: the forwarded one behind a trusted proxy, else the socket's peer. */
export function clientIp(peer: string | undefined, forwarded: string | string[] | undefined, trustProxy: boolean): string {
  const fromProxy = trustProxy ? lastForwarded(forwarded) : undefined;
  return normalize(fromProxy ?? peer ?? 'unknown');
}
