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

  /**
   * `peer` says whether an origin is one of the cluster's nodes: a page one
   * node serves (the dashboard's simulator, a client sent on by a redirect)
   * connects to the others, each its own origin when they are addressed
   * directly rather than through one proxy.
   */
  allows(origin: string | undefined, host: string | undefined, peer: (origin: string) => boolean = () => false): boolean {
    if (origin === undefined) return true;
    const given = origin.toLowerCase();
    if (host !== undefined && host !== '' && (given === `http://${host.toLowerCase()}` || given === `https://${host.toLowerCase()}`)) {
      return true;
    }
    return this.patterns.some((p) => p.test(given)) || peer(given);
  }
}

/** The origins a node's pages are served from: its address, and its advertised WebSocket URL as `http(s)://`. */
export function nodeOrigins(node: { address: string; url: string }): string[] {
  return [node.address, node.url].flatMap((text) => {
    if (!URL.canParse(text)) return [];
    const url = new URL(text);
    const scheme = url.protocol === 'https:' || url.protocol === 'wss:' ? 'https:' : 'http:';
    return [`${scheme}//${url.host}`];
  });
}

/** A pattern as an anchored, case-insensitive expression: `*` is any run of characters, the rest literal. */
function compile(pattern: string): RegExp {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`, 'i');
}
