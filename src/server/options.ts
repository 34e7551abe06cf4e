/**
 * Everything a node can be configured with, and the defaults. The CLI
 * (flags, `SWITCHBOARD_*` environment variables, `--config` JSON file) builds
 * a `NodeOptions`; tests build one directly.
 */
import { DEFAULT_TOKEN_POLICY } from './auth/token.js';

/** Per-namespace channel options (the `namespaces` object of the config file). */
export interface NamespaceOptions {
  /** Messages kept per channel for recovery; 0 disables history (and offsets). */
  historySize: number;
  /** How long a message is kept, in seconds. */
  historyTtl: number;
  /** Whether the channel's subscribers are tracked for `/api/presence/:channel`. */
  presence: boolean;
  /**
   * Whether clients may `publish` to channels of this namespace (`send` to a
   * user: of `user`); the server API always may. Absent: only under
   * `--insecure`, or when the namespace asks the publish hook (the backend
   * decides); otherwise refused (SPEC "Running it").
   */
  publish?: boolean;
  /** Whether subscribing needs a matching pattern in the token's `channels` claim. */
  private: boolean;
  /** Whether each client subscribe asks the backend's subscribe hook (SPEC "Backend hooks and events"); absent: no. */
  subscribeHook?: boolean;
  /** Whether each client publish asks the backend's publish hook, which may rewrite the data; absent: no. */
  publishHook?: boolean;
  /** Whether subscribes and unsubscribes are announced as `join`/`leave` frames and events; absent: no. */
  joinLeave?: boolean;
}

export type RoutingName = 'interest' | 'broadcast' | 'registry' | 'hashring';
export const ROUTINGS: readonly RoutingName[] = ['interest', 'broadcast', 'registry', 'hashring'];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Caps on what one node, connection or IP may use. Each is hit by a test. */
export interface Limits {
  /** Largest accepted client frame, bytes; a larger one closes the connection with 1009. */
  maxFrameBytes: number;
  /** Open connections per node; past it, upgrades get HTTP 503. */
  maxConnections: number;
  /** New connections per client IP per second; past it, upgrades get HTTP 429. 0 disables. */
  maxConnectionsPerIpPerSecond: number;
  /** New sessions admitted per second by this node (a token bucket); past it, upgrades get HTTP 503 with `Retry-After`. 0 disables. */
  maxHandshakesPerSecond: number;
  /** Handshakes under way at once (token check and recovery reads until `welcome`); past it, HTTP 503 with `Retry-After`. 0 disables. */
  maxHandshakesInFlight: number;
  /** Frames per connection per second, `subscribe` and `unsubscribe` aside; past it, `rate_limited` errors, then close 4129. */
  maxMessagesPerSecond: number;
  /** Channels one connection may subscribe to (its personal channel not counted). */
  maxSubscriptions: number;
  /**
   * `subscribe` frames per connection per second, after a burst of
   * `maxSubscriptions` (or one second's worth, if more): a client can always
   * (re)subscribe to all it may hold at once, while churn stays bounded.
   * Each subscribe pays for one `unsubscribe`; one nothing paid for counts
   * as a subscribe. Past it, `rate_limited` errors; past as many refusals
   * within 10 s as the burst, close 4129.
   */
  maxSubscribesPerSecond: number;
  /** Bytes queued for a connection that does not read; past it, close 4101. */
  maxBufferedBytes: number;
  /** Largest server API request body, bytes; past it, 413 `too_large`. */
  maxBodyBytes: number;
  /** Bytes a connection may publish and send per minute (frame sizes); past it, `rate_limited`. 0 disables. */
  maxPublishBytesPerMinute: number;
  /** Bytes one user's connections on this node may publish and send per minute; past it, `rate_limited`. 0 disables. */
  maxUserPublishBytesPerMinute: number;
  /** Channels a connection may write to per minute that it did not write to in the minute before; past it, `rate_limited`. 0 disables. */
  maxNewChannelsPerMinute: number;
  /** The same for one user's connections on this node. 0 disables. */
  maxUserNewChannelsPerMinute: number;
  /** History bytes replayed to a connection per second (16 s worth at once); past it, subscribes with `since` get `rate_limited`. 0 disables. */
  maxReplayBytesPerSecond: number;
  /** Open connections per client IP on this node; past it, upgrades get HTTP 429. 0 disables. */
  maxConnectionsPerIp: number;
  /** Open connections per user on this node; past it, upgrades get HTTP 429. 0 disables. */
  maxConnectionsPerUser: number;
  /** Subscriptions held by this node's sessions, personal channels aside; past it, subscribes get `unavailable`. 0 disables. */
  maxSubscriptionsPerNode: number;
}

export interface NodeOptions {
  port: number;
  host: string;
  nodeId: string;
  /** `memory`, or a broker URL (`redis://…`, `redis+cluster://…`, `nats://…`, `amqp://…`). */
  broker: string;
  routing: RoutingName;
  /**
   * This node's public WebSocket URL (`ws://10.0.0.5:8080/ws`), handed to
   * clients by `/api/route` and by 4102 redirects. Default: built from the
   * listening host and port (`127.0.0.1` for a wildcard host).
   */
  advertiseUrl?: string;
  /** Hash-ring routing: close sessions of users another node owns with 4102 and that node's URL (default: accept any user). */
  hashringRedirect: boolean;
  /** Hash-ring routing: points per node on the ring. */
  hashringVnodes: number;
  /** HMAC key for HS256 tokens. */
  secret?: string;
  /** PEM text (not the path) of the RS256/ES256 public key. */
  publicKey?: string;
  /** The `aud` every token must name; none: not checked. */
  jwtAudience?: string;
  /** The `iss` every token must carry; none: not checked. */
  jwtIssuer?: string;
  /** Longest token lifetime accepted, seconds: `exp − iat`, or `exp − now` without `iat`. */
  jwtMaxLifetime: number;
  /** Seconds of clock difference tolerated for a token's `exp`, `nbf` and `iat`. */
  jwtClockSkew: number;
  apiKeys: string[];
  /** Development only: accept `?user=<id>` without a token, and the server API without a key. */
  insecure: boolean;
  /** Seconds a draining node waits for its clients before it exits. */
  drainTimeout: number;
  /** Seconds an API publish's `idempotencyKey` is remembered per channel. */
  idempotencyWindow: number;
  /** Milliseconds a publish may spend retrying a failing or unreachable broker before it answers `unavailable`. */
  publishDeadline: number;
  /** Node processes on this machine sharing the port. */
  workers: number;
  /** Heartbeat: the server sends `ping` after this many quiet seconds. */
  ping: number;
  /** Heartbeat: seconds the server waits for an answer to its `ping` before closing with 4103. */
  pongTimeout: number;
  /** Seconds between a node's cluster heartbeats. */
  heartbeat: number;
  /** Missed heartbeats after which a node is declared dead. */
  deadAfterBeats: number;
  /**
   * Cluster secrets (`--cluster-secret`): every control message between
   * nodes is signed with the first and accepted under any (to roll a
   * secret). None: control messages are checked but not authenticated.
   */
  clusterSecrets?: string[];
  /** POST `online`/`offline` events to this URL (see docs/backend.md); none: no events are logged. */
  /** `--ingest` URLs: sources whose records this node publishes (see ingest/source.ts). */
  ingest: string[];
  webhook?: string;
  /** HMAC key of the webhook signature (required with `webhook`). */
  webhookSecret?: string;
  /** Events per webhook request at most. */
  webhookBatch: number;
  /** Milliseconds a webhook request may take; past it, it counts as failed and is retried. */
  webhookTimeout: number;
  /** Events waiting for delivery at most, cluster-wide; past it, new events are dropped, counted and logged. */
  webhookMaxPending: number;
  /** POST client `rpc` frames to this URL (docs/backend.md); none: an rpc is answered `not_found`. */
  rpcHook?: string;
  /** POST upgrades without a valid token to this URL (docs/backend.md); its answer names the user or refuses the upgrade. */
  connectHook?: string;
  /** POST sessions the connect hook accepted with an `expireAt` to this URL before then; none: they close at `expireAt` (4105). */
  refreshHook?: string;
  /** POST client subscribes to channels of namespaces with `subscribeHook` to this URL (docs/backend.md); required by such a namespace. */
  subscribeHook?: string;
  /** POST client publishes to channels of namespaces with `publishHook` to this URL; required by such a namespace. */
  publishHook?: string;
  /** HMAC key of the hook requests' signature; none: `webhookSecret`, and unsigned without either. */
  hookSecret?: string;
  /** Milliseconds a hook request may take; past it the action is refused as `unavailable`. */
  hookTimeout: number;
  /** Hook requests in flight on this node at most; past it an action is refused as `unavailable` at once. */
  hookMaxInFlight: number;
  /**
   * PEM certificate chain file (path): with `tlsKey`, the node serves HTTPS
   * and WSS on its port and advertises `wss://` URLs; both files are read
   * again on `reloadTls()` (SIGHUP). None: plain HTTP.
   */
  tlsCert?: string;
  /** PEM private key file (path) of `tlsCert`; both or neither. */
  tlsKey?: string;
  /** Use the last address of `X-Forwarded-For` (the one the proxy appended) as the client IP (behind a trusted proxy). */
  trustProxy: boolean;
  /** Offer permessage-deflate (messages of 1 KiB and more compressed, no context takeover). Off: CPU matters more than bytes by default. */
  permessageDeflate: boolean;
  /**
   * Select the `switchboard.v1.msgpack` subprotocol for clients that offer
   * it: their frames are MessagePack binary messages. Off: it is never
   * selected, and such clients get `switchboard.v1` (JSON) when they offer
   * it too.
   */
  msgpack: boolean;
  /**
   * Milliseconds a socket's fan-out frames wait after the first of them, so
   * that publications arriving meanwhile leave in one write (fewer system
   * calls per delivery, at the cost of that much latency); 0: they leave at
   * the end of the event-loop tick.
   */
  writeDelay: number;
  /** Browser origins besides the node's own allowed to open `/ws` (`*` matches any run of characters); empty: only the node's own. */
  allowedOrigins: string[];
  /** Seconds an HTTP connection may stay silent both ways before any upgrade; past it, it is closed. */
  httpIdleTimeout: number;
  /** Seconds a request's headers may take to arrive in full; past it, 408 and the connection is closed. */
  headersTimeout: number;
  /** Milliseconds a WebSocket upgraded without a token may take to send its `connect` frame; past it, close 4001. */
  firstFrameTimeout: number;
  /** TCP connections the HTTP server keeps open at most, WebSockets included; absent: `limits.maxConnections` + 1024. */
  maxTcpConnections?: number;
  /** Serve `/metrics` on this port (same host) and not on the main one; absent: on the main one. */
  metricsPort?: number;
  /** Serve the browser SDK's sourcemap at `/switchboard.js.map`; off: 404. */
  serveSourcemaps: boolean;
  logLevel: LogLevel;
  limits: Limits;
  /** Options of the default namespace (channels without `:`) and of any namespace not listed. */
  defaultNamespace: NamespaceOptions;
  /** Options by namespace name; `user` configures personal channels. */
  namespaces: Record<string, NamespaceOptions>;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxFrameBytes: 64 * 1024,
  maxConnections: 200_000,
  maxConnectionsPerIpPerSecond: 100,
  maxHandshakesPerSecond: 500,
  maxHandshakesInFlight: 500,
  maxMessagesPerSecond: 100,
  maxSubscriptions: 1000,
  maxSubscribesPerSecond: 20,
  maxBufferedBytes: 4 * 1024 * 1024,
  maxBodyBytes: 1024 * 1024,
  maxPublishBytesPerMinute: 4 * 1024 * 1024,
  maxUserPublishBytesPerMinute: 16 * 1024 * 1024,
  maxNewChannelsPerMinute: 100,
  maxUserNewChannelsPerMinute: 300,
  maxReplayBytesPerSecond: 1024 * 1024,
  maxConnectionsPerIp: 1000,
  maxConnectionsPerUser: 100,
  maxSubscriptionsPerNode: 2_000_000,
};

/** SPEC: every channel keeps its last 100 messages for 5 minutes. */
export const DEFAULT_NAMESPACE: Readonly<NamespaceOptions> = {
  historySize: 100,
  historyTtl: 300,
  presence: true,
  private: false,
};

/** SPEC: personal channels keep 1000 messages for 24 hours. */
export const DEFAULT_PERSONAL_NAMESPACE: Readonly<NamespaceOptions> = {
  historySize: 1000,
  historyTtl: 24 * 3600,
  presence: true,
  private: false,
};

export function defaultNodeId(): string {
  const host = (process.env.HOSTNAME ?? 'node').replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 40) || 'node';
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Options as given by a caller: anything left out takes its default, limits and namespace options field by field. */
export type NodeOptionsInput = Partial<Omit<NodeOptions, 'limits' | 'defaultNamespace'>> & {
  limits?: Partial<Limits>;
  defaultNamespace?: Partial<NamespaceOptions>;
};

/** Complete options from a partial set, filling every default. */
/** How long the cluster takes to agree on a join or a death: `--heartbeat` × `--dead-after-beats`, in milliseconds. */
export function detectionMs(options: Pick<NodeOptions, 'heartbeat' | 'deadAfterBeats'>): number {
  return options.heartbeat * options.deadAfterBeats * 1000;
}

/** The URL schemes a node serves: `https`/`wss` with TLS (`tlsCert` and `tlsKey`), else `http`/`ws`. */
export function schemesOf(options: Pick<NodeOptions, 'tlsCert'>): { http: 'http' | 'https'; ws: 'ws' | 'wss' } {
  return options.tlsCert === undefined ? { http: 'http', ws: 'ws' } : { http: 'https', ws: 'wss' };
}

export function withDefaults(partial: NodeOptionsInput = {}): NodeOptions {
  const namespaces: Record<string, NamespaceOptions> = {
    user: { ...DEFAULT_PERSONAL_NAMESPACE },
    ...(partial.namespaces ?? {}),
  };
  return {
    port: 8080,
    host: '0.0.0.0',
    broker: 'memory',
    routing: 'interest',
    hashringRedirect: false,
    hashringVnodes: 160,
    apiKeys: [],
    ingest: [],
    jwtMaxLifetime: DEFAULT_TOKEN_POLICY.maxLifetime,
    jwtClockSkew: DEFAULT_TOKEN_POLICY.clockSkew,
    insecure: false,
    drainTimeout: 30,
    idempotencyWindow: 600,
    publishDeadline: 5000,
    workers: 1,
    ping: 25,
    pongTimeout: 10,
    heartbeat: 2,
    deadAfterBeats: 3,
    webhookBatch: 100,
    webhookTimeout: 5000,
    webhookMaxPending: 100_000,
    hookTimeout: 3000,
    hookMaxInFlight: 256,
    trustProxy: false,
    permessageDeflate: false,
    msgpack: false,
    writeDelay: 0,
    allowedOrigins: [],
    httpIdleTimeout: 30,
    headersTimeout: 10,
    firstFrameTimeout: 5000,
    serveSourcemaps: false,
    logLevel: 'info',
    ...partial,
    nodeId: partial.nodeId ?? defaultNodeId(),
    limits: { ...DEFAULT_LIMITS, ...(partial.limits ?? {}) },
    defaultNamespace: { ...DEFAULT_NAMESPACE, ...(partial.defaultNamespace ?? {}) },
    namespaces,
  };
}
