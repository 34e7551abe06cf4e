/**
 * Which browser origins may open a WebSocket to the node (SPEC "Client
 * connection"): its own, and those `--allowed-origins` matches. A page on
 * another site would otherwise open a socket with its visitor's cookies
 * (cross-site WebSocket hijacking): browsers apply no same-origin rule to
 * WebSockets, they only send `Origin`.
 */

/**
 * The node's own origin is the one the client addressed: `http://` or
 * `https://` and the request's `Host` header (a proxy that terminates TLS
 * keeps the host, and the page came from it too). A request without
 * `Origin` is not from a browser page and is allowed; one with `Origin:
 * null` (a sandboxed frame, a file) only when a pattern says `null`.
 */
export class OriginPolicy {
  private readonly patterns: readonly RegExp[];

  /** `patterns`: origins, `*` matching any run of characters (`https://*.example.com`, `*` for any). */
  constructor(patterns: readonly string[]) {
    this.patterns = patterns.map(compile);
  }

  allows(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true;
    const given = origin.toLowerCase();
    if (host !== undefined && host !== '' && (given === `http://${host.toLowerCase()}` || given === `https://${host.toLowerCase()}`)) {
      return true;
    }
    return this.patterns.some((p) => p.test(given));
  }
}

/** A pattern as an anchored, case-insensitive expression: `*` is any run of characters, the rest literal. */
function compile(pattern: string): RegExp {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`, 'i');
}
