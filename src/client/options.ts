/**
 * The options of `SwitchboardClient`, their defaults, and their validation
 * (bad arguments throw at once, in the constructor).
 */
import { SUBPROTOCOL } from '../protocol/index.js';
import type { WireCodec } from '../protocol/msgpack.js';
import type { RandomSource } from '../shared/backoff.js';
import { globalWebSocket, type WebSocketConstructor } from './transport.js';

export interface ClientOptions {
  /** The node's WebSocket endpoint, `ws://host:port/ws`; a relative `/ws` resolves against the page. Required. */
  url: string;
  /** A fixed JWT, sent as `tokenIn` says. */
  token?: string;
  /** Called before every (re)connect for a fresh JWT; wins over `token`. A rejection is reported and retried with backoff. */
  getToken?: () => Promise<string>;
  /**
   * Where the token travels. `'frame'`: in a first frame `{"type":
   * "connect", "token"}` right after the upgrade, so that it never appears
   * in a URL (proxy and server logs, browser history); a refused token then
   * closes the connection with 4001. `'query'`: as `?token=` in the URL, for
   * nodes whose connect hook would otherwise be asked (see docs/client.md);
   * a refused token is then an HTTP 401 before the upgrade, retried with
   * backoff. Default `'frame'`.
   */
  tokenIn?: TokenPlacement;
  /**
   * Called before every (re)connect, except one that follows a 4102
   * redirect, for the WebSocket URL to use instead of `url` — e.g. the user's
   * owner node from `routeResolver()`. A rejection, a bad URL, or no answer
   * within `connectTimeout` is reported as an `error` (`resolve_url`) and
   * that attempt uses `url`. Default: none (always `url`).
   */
  resolveUrl?: () => Promise<string>;
  /** Extra query parameters, e.g. `{ user: 'alice' }` for a node in `--insecure` mode. Default: none. */
  params?: Record<string, string>;
  /**
   * A stable name for this device or installation (1–64 of
   * `A-Za-z0-9_-.:@=,`, e.g. an id kept in localStorage). The server keeps
   * what each device acknowledged, so a fresh client of each device gets
   * every personal message it has not acknowledged, even ones another
   * device already read. Default: in a browser, an id kept in
   * `localStorage` (`switchboard:device`), made on first use; elsewhere
   * (Node), or when storage is unavailable, none: the user's one shared
   * position. `null` asks for none in a browser too.
   */
  device?: string | null;
  /** The WebSocket class. Default: the global `WebSocket`; in Node < 22 pass the `ws` package's class. */
  WebSocket?: WebSocketConstructor;
  /** Subprotocol asked for; `null` asks for none. Default `'switchboard.v1'`. */
  subprotocol?: string | null;
  /**
   * How frames are encoded. `'msgpack'` offers the `switchboard.v1.msgpack`
   * subprotocol first (then `subprotocol`, for a server without it) and,
   * when the server selects it, sends and receives every frame as a binary
   * MessagePack message; when it selects plain `switchboard.v1` (MessagePack
   * is off there) that connection uses JSON. The codec in use is in the
   * `connected` event. Default `'json'`.
   */
  codec?: WireCodec;
  /** Backoff window after the first failure, ms. Default 500. */
  minReconnectDelay?: number;
  /** Largest backoff window, ms. Default 20000. */
  maxReconnectDelay?: number;
  /** How long a request waits for its reply, time queued included, ms. Default 10000. */
  requestTimeout?: number;
  /** How long a connection attempt may take until `welcome`, ms. Default 10000. */
  connectTimeout?: number;
  /** Silence tolerated beyond the server's heartbeat interval before reconnecting, ms. Default 5000. */
  heartbeatGrace?: number;
  /** Requests that may wait for a connection; more are rejected with `queue_full`. Default 1000. */
  maxQueuedRequests?: number;
  /** Live messages held per channel while its (re)subscription is in flight. Default 10000. */
  maxBufferedMessages?: number;
  /** Send `ack` frames for delivered messages. Default true. */
  autoAck?: boolean;
  /** At most one `ack` per channel per this many ms. Default 1000. */
  ackInterval?: number;
  /** Uniform source in [0, 1) for backoff jitter; tests inject one. Default `Math.random`. */
  random?: RandomSource;
}

/** Where `SwitchboardClient` sends the token (`ClientOptions.tokenIn`). */
export type TokenPlacement = 'frame' | 'query';

/** `device` travels in `params`. */
export type ResolvedOptions = Required<Omit<ClientOptions, 'token' | 'getToken' | 'resolveUrl' | 'device'>> &
  Pick<ClientOptions, 'token' | 'getToken' | 'resolveUrl'>;

function nonNegative(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`SwitchboardClient: "${name}" must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

function codecOption(value: unknown): WireCodec {
  if (value === undefined) return 'json';
  if (value !== 'json' && value !== 'msgpack') {
    throw new TypeError(`SwitchboardClient: "codec" must be 'json' or 'msgpack', got ${String(value).slice(0, 40)}`);
  }
  return value;
}

function tokenInOption(value: unknown): TokenPlacement {
  if (value === undefined) return 'frame';
  if (value !== 'frame' && value !== 'query') {
    throw new TypeError(`SwitchboardClient: "tokenIn" must be 'frame' or 'query', got ${String(value).slice(0, 40)}`);
  }
  return value;
}

/** Fill defaults and validate; throws `TypeError` on a bad option. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (typeof options?.url !== 'string' || options.url === '') {
    throw new TypeError('SwitchboardClient: "url" is required, e.g. "ws://localhost:8080/ws"');
  }
  const WebSocket = options.WebSocket ?? globalWebSocket();
  if (!WebSocket) {
    throw new TypeError('SwitchboardClient: no global WebSocket; pass the "WebSocket" option (e.g. the ws package\'s class)');
  }
  const resolved: ResolvedOptions = {
    url: options.url,
    params: { ...(options.params ?? {}), ...deviceParam(options.device) },
    WebSocket,
    subprotocol: options.subprotocol === undefined ? SUBPROTOCOL : options.subprotocol,
    codec: codecOption(options.codec),
    tokenIn: tokenInOption(options.tokenIn),
    minReconnectDelay: nonNegative('minReconnectDelay', options.minReconnectDelay ?? 500),
    maxReconnectDelay: nonNegative('maxReconnectDelay', options.maxReconnectDelay ?? 20_000),
    requestTimeout: nonNegative('requestTimeout', options.requestTimeout ?? 10_000),
    connectTimeout: nonNegative('connectTimeout', options.connectTimeout ?? 10_000),
    heartbeatGrace: nonNegative('heartbeatGrace', options.heartbeatGrace ?? 5_000),
    maxQueuedRequests: nonNegative('maxQueuedRequests', options.maxQueuedRequests ?? 1000),
    maxBufferedMessages: nonNegative('maxBufferedMessages', options.maxBufferedMessages ?? 10_000),
    autoAck: options.autoAck ?? true,
    ackInterval: nonNegative('ackInterval', options.ackInterval ?? 1000),
    random: options.random ?? Math.random,
  };
  if (resolved.minReconnectDelay > resolved.maxReconnectDelay) {
    throw new TypeError('SwitchboardClient: "minReconnectDelay" must not exceed "maxReconnectDelay"');
  }
  if (options.token !== undefined) resolved.token = options.token;
  if (options.getToken !== undefined) resolved.getToken = options.getToken;
  if (options.resolveUrl !== undefined) {
    if (typeof options.resolveUrl !== 'function') throw new TypeError('SwitchboardClient: "resolveUrl" must be a function');
    resolved.resolveUrl = options.resolveUrl;
  }
  return resolved;
}

/** Where a browser keeps its device id. */
export const DEVICE_KEY = 'switchboard:device';
const DEVICE = /^[A-Za-z0-9_\-.:@=,]{1,64}$/;

interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** This browser's device id from `localStorage`, made on first use; undefined without storage (Node, private modes that throw). */
function storedDevice(): string | undefined {
  try {
    const store = (globalThis as { localStorage?: KeyValueStore }).localStorage;
    if (!store) return undefined;
    const kept = store.getItem(DEVICE_KEY);
    if (kept !== null && DEVICE.test(kept)) return kept;
    const made =
      (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID?.() ??
      `d-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
    store.setItem(DEVICE_KEY, made);
    return made;
  } catch {
    return undefined;
  }
}

function deviceParam(option: string | null | undefined): Record<string, string> {
  if (option === null) return {};
  const device = option === undefined ? storedDevice() : option;
  if (device === undefined) return {};
  if (typeof device !== 'string' || !DEVICE.test(device)) {
    throw new TypeError('SwitchboardClient: "device" must be 1-64 of A-Za-z0-9_-.:@=,');
  }
  return { device };
}
