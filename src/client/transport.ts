/**
 * The seam between the client and a WebSocket implementation. The browser's
 * `WebSocket` and the `ws` package's class both fit `WebSocketLike`; nothing
 * here names a DOM or Node type, so the SDK builds for either.
 */

/**
 * A handler property type that accepts handlers of narrower event types, as
 * the DOM and `ws` declare theirs (method parameters are bivariant).
 */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** The part of a WebSocket the client uses. */
export interface WebSocketLike {
  /** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
  readonly readyState: number;
  /** The subprotocol the server selected. */
  readonly protocol: string;
  /**
   * How binary messages are delivered. Set to `'arraybuffer'` when the
   * client asks for the MessagePack codec (browsers default to `'blob'`,
   * which cannot be decoded synchronously; `ws` to `'nodebuffer'`).
   */
  binaryType?: string;
  /** A string is sent as a text message, bytes (MessagePack) as a binary one. */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export const WS_OPEN = 1;
export const WS_CLOSING = 2;

/** The global `WebSocket` (browsers, Node ≥ 22, Deno, Bun), if there is one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

/** What goes into the connection URL's query. */
export interface ConnectQuery {
  token?: string;
  params?: Readonly<Record<string, string>>;
  /** Recovery position of the personal channel. */
  since?: { offset: number; epoch: string };
}

/**
 * The URL to open: `base` with `token`, extra `params` and the personal
 * channel's `since`/`epoch` in the query. A relative `base` (`/ws`) resolves
 * against the page's location, and `http(s):` becomes `ws(s):`. Throws for a
 * malformed `base` or one of another scheme.
 */
export function buildConnectUrl(base: string, query: ConnectQuery): string {
  const location = (globalThis as { location?: { href: string } }).location;
  const url = location ? new URL(base, location.href) : new URL(base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${base.slice(0, 100)}`);
  for (const [k, v] of Object.entries(query.params ?? {})) url.searchParams.set(k, v);
  if (query.token !== undefined) url.searchParams.set('token', query.token);
  if (query.since) {
    url.searchParams.set('since', String(query.since.offset));
    url.searchParams.set('epoch', query.since.epoch);
  }
  return url.toString();
}

/**
 * True for an absolute `ws:` or `wss:` URL: the only kind the client follows
 * when a server redirects it (another scheme could point a page anywhere).
 */
export function isWebSocketUrl(value: string): boolean {
  try {
    const { protocol } = new URL(value);
    return protocol === 'ws:' || protocol === 'wss:';
  } catch {
    return false;
  }
}

/** Longest redirect URL the client follows (the server side bounds advertised URLs the same). */
export const MAX_REDIRECT_URL_CHARS = 2048;

/**
 * Why the client will not go from `from` (the URL of the connection the
 * server closes, or of the route service asked) to `to`, or undefined: it
 * goes only to an absolute `ws:`/`wss:` URL of at most
 * `MAX_REDIRECT_URL_CHARS`, and never from a secure URL (`wss:`, `https:`)
 * to `ws:`, where the token and every message would cross the network in
 * clear.
 */
export function redirectProblem(from: string, to: string): string | undefined {
  const shown = JSON.stringify(to.slice(0, 100));
  if (to.length > MAX_REDIRECT_URL_CHARS || !isWebSocketUrl(to)) return `ignored a redirect to ${shown}: not a ws:/wss: URL`;
  const secure = /^(wss|https):/i.test(from);
  return secure && new URL(to).protocol === 'ws:' ? `ignored a redirect to ${shown}: from wss: to ws: would drop TLS` : undefined;
}

/** Close codes a client may pass to `WebSocket.close` (others throw in browsers). */
export function closableCode(code: number): number {
  return code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
}
