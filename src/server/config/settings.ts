/**
 * The table of every setting: flag, type, range and one-line meaning. The
 * flag parser, the environment reader, the config file reader and `--help`
 * all follow this table, so a setting is added in one place.
 *
 * Names: the table key is the config-file key (camelCase, inside `limits` for
 * limits) and the `NodeOptions` field; the flag is `--<flag>`; the environment
 * variable is `SWITCHBOARD_<FLAG>` (upper case, `-` → `_`).
 */
import { LOG_LEVELS, ROUTINGS } from '../options.js';
import { BROKER_FORMS, checkBroker, redactBroker } from './broker.js';
import { checkIngest, redactIngest } from '../ingest/source.js';
import { isUrlOf, MAX_URL_CHARS } from '../../cluster/validate.js';
import { LIMIT_SETTINGS } from './limit-settings.js';

interface Common {
  /** Flag name without `--`. */
  readonly flag: string;
  /** One line for `--help`. */
  readonly help: string;
  /** The value placeholder in `--help` (default by kind: `<n>`, `<file>`, `<value>`). */
  readonly arg?: string;
  /** Set inside `limits` (config file and `NodeOptions`). */
  readonly section?: 'limits';
  /** Never echo the value in messages. */
  readonly sensitive?: boolean;
  /** How to echo a value in messages (e.g. with the password hidden). */
  readonly show?: (value: string) => string;
}

/** A non-empty string; `check` returns what is wrong with it, or undefined. */
export interface StringSetting extends Common {
  readonly kind: 'string';
  readonly check?: (value: string) => string | undefined;
}
/** A file path; relative paths are resolved against the folder of the config file, or the working directory for flags and env. */
export interface PathSetting extends Common {
  readonly kind: 'path';
}
/** A whole number in `[min, max]`. */
export interface IntegerSetting extends Common {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
}
/** A switch: a flag without value, `1|true|0|false` in env, `true|false` in the file. */
export interface BooleanSetting extends Common {
  readonly kind: 'boolean';
}
/** Several strings: a repeatable flag, a comma-separated env value, an array in the file. */
export interface ListSetting extends Common {
  readonly kind: 'list';
  /** What is wrong with one item, or undefined. */
  readonly check?: (value: string) => string | undefined;
}
/** One of a fixed set of words. */
export interface ChoiceSetting extends Common {
  readonly kind: 'choice';
  readonly choices: readonly string[];
}

export type SettingSpec = StringSetting | PathSetting | IntegerSetting | BooleanSetting | ListSetting | ChoiceSetting;

/** A parsed value of any setting. */
export type SettingValue = string | number | boolean | string[];

/** The type a setting's values have after parsing. */
export type ValueOf<S extends SettingSpec> = S extends { readonly kind: 'integer' }
  ? number
  : S extends { readonly kind: 'boolean' }
    ? boolean
    : S extends { readonly kind: 'list' }
      ? string[]
      : S extends { readonly kind: 'choice'; readonly choices: readonly (infer C)[] }
        ? C
        : string;

const NODE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX = Number.MAX_SAFE_INTEGER;
const DAY = 24 * 3600;

function checkNodeId(value: string): string | undefined {
  return NODE_ID_RE.test(value) ? undefined : 'must be 1–64 characters of A-Za-z0-9_-.';
}

function checkBrokerValue(value: string): string | undefined {
  const result = checkBroker(value);
  return result.ok ? undefined : `${result.problem}: ${BROKER_FORMS}`;
}

/** What is wrong with `value` as a URL of one of `schemes` (`ws:`, …); `what` and `example` make the message. */
function checkUrl(value: string, schemes: readonly string[], what: string, example: string): string | undefined {
  const wanted = `must be ${what}, e.g. ${example}`;
  try {
    return schemes.includes(new URL(value).protocol) ? undefined : wanted;
  } catch {
    return wanted;
  }
}

function checkAdvertiseUrl(value: string): string | undefined {
  const problem = checkUrl(value, ['ws:', 'wss:'], 'a ws:// or wss:// URL', 'ws://10.0.0.5:8080/ws');
  if (problem !== undefined) return problem;
  // Peers check heartbeats by the same rule (cluster/validate.ts): a node must not advertise a URL they drop.
  return isUrlOf(value, ['ws:', 'wss:']) ? undefined : `must be at most ${MAX_URL_CHARS} characters, without a user name or password`;
}

function checkWebhook(value: string): string | undefined {
  return checkUrl(value, ['http:', 'https:'], 'an http:// or https:// URL', 'https://backend.internal/switchboard/events');
}

function checkHost(value: string): string | undefined {
  return /\s/.test(value) ? 'must be a host name or IP address without spaces' : undefined;
}

/** An origin pattern: `*`, or a scheme, `://` and a host (with `*` for any run of characters) and an optional port, no path. */
function checkOriginPattern(value: string): string | undefined {
  if (value === '*' || value === 'null' || /^[a-z][a-z0-9+.-]*:\/\/[a-z0-9.*[\]:-]+$/i.test(value)) return undefined;
  return 'must be an origin such as https://app.example.com or https://*.example.com (scheme and host, no path), or *';
}

export const SETTINGS = {
  port: { flag: 'port', kind: 'integer', arg: '<port>', min: 0, max: 65535, help: 'TCP port to listen on (0 picks a free one)' },
  host: { flag: 'host', kind: 'string', arg: '<address>', check: checkHost, help: 'address to listen on (127.0.0.1 under --insecure unless given)' },
  nodeId: { flag: 'node-id', kind: 'string', arg: '<id>', check: checkNodeId, help: 'the node id in the cluster' },
  broker: {
    flag: 'broker',
    kind: 'string',
    arg: '<url>',
    check: checkBrokerValue,
    show: redactBroker,
    help: 'memory, or a redis://, redis+cluster://, nats:// or amqp:// URL',
  },
  routing: { flag: 'routing', kind: 'choice', choices: ROUTINGS, arg: '<name>', help: 'how publications find nodes' },
  advertiseUrl: {
    flag: 'advertise-url',
    kind: 'string',
    arg: '<ws-url>',
    check: checkAdvertiseUrl,
    help: "this node's public WebSocket URL, given to clients by /api/route and 4102 redirects",
  },
  hashringRedirect: {
    flag: 'hashring-redirect',
    kind: 'boolean',
    help: 'hashring routing: close sessions of users this node does not own with 4102 and the owner URL',
  },
  hashringVnodes: {
    flag: 'hashring-vnodes',
    kind: 'integer',
    arg: '<n>',
    min: 1,
    max: 4096,
    help: 'hashring routing: points per node on the ring (more: more even spread)',
  },
  secret: { flag: 'secret', kind: 'string', arg: '<key>', sensitive: true, help: 'HMAC key for HS256 tokens' },
  publicKey: { flag: 'public-key', kind: 'path', help: 'PEM file of the RS256/ES256 public key for tokens' },
  jwtAudience: { flag: 'jwt-audience', kind: 'string', arg: '<aud>', help: 'tokens must name this audience (aud); unset: not checked' },
  jwtIssuer: { flag: 'jwt-issuer', kind: 'string', arg: '<iss>', help: 'tokens must come from this issuer (iss); unset: not checked' },
  jwtMaxLifetime: {
    flag: 'jwt-max-lifetime',
    kind: 'integer',
    arg: '<seconds>',
    min: 1,
    max: 365 * DAY,
    help: 'longest token lifetime accepted: exp − iat (exp − now without iat)',
  },
  jwtClockSkew: { flag: 'jwt-clock-skew', kind: 'integer', arg: '<seconds>', min: 0, max: 3600, help: 'clock difference tolerated for exp, nbf and iat' },
  apiKeys: { flag: 'api-key', kind: 'list', arg: '<key>', sensitive: true, help: 'server API key (repeat the flag for several)' },
  insecure: { flag: 'insecure', kind: 'boolean', help: 'DEVELOPMENT ONLY: accept ?user=<id> without a token' },
  workers: { flag: 'workers', kind: 'integer', min: 1, max: 1024, help: 'node processes on this machine sharing the port' },
  drainTimeout: { flag: 'drain-timeout', kind: 'integer', arg: '<seconds>', min: 0, max: DAY, help: 'on SIGTERM, how long to drain before exiting' },
  idempotencyWindow: {
    flag: 'idempotency-window',
    kind: 'integer',
    arg: '<seconds>',
    min: 1,
    max: DAY,
    help: 'how long an API idempotencyKey is remembered per channel',
  },
  publishDeadline: {
    flag: 'publish-deadline',
    kind: 'integer',
    arg: '<ms>',
    min: 0,
    max: 600_000,
    help: 'how long a publish retries a failing broker before answering 503 unavailable',
  },
  ping: { flag: 'ping', kind: 'integer', arg: '<seconds>', min: 1, max: 3600, help: 'quiet time before the server pings a client' },
  pongTimeout: { flag: 'pong-timeout', kind: 'integer', arg: '<seconds>', min: 1, max: 3600, help: 'time to wait for a pong before closing (4103)' },
  heartbeat: { flag: 'heartbeat', kind: 'integer', arg: '<seconds>', min: 1, max: 3600, help: 'seconds between cluster heartbeats' },
  deadAfterBeats: {
    flag: 'dead-after-beats',
    kind: 'integer',
    arg: '<count>',
    min: 2,
    max: 100,
    help: 'missed heartbeats after which a node is declared dead',
  },
  clusterSecrets: {
    flag: 'cluster-secret',
    kind: 'list',
    arg: '<key>',
    sensitive: true,
    help: 'HMAC key that signs control messages between nodes (repeat: the first signs, any is accepted, to roll a key)',
  },
  ingest: {
    flag: 'ingest',
    kind: 'list',
    arg: '<url>',
    check: checkIngest,
    show: redactIngest,
    help: 'publish what a source holds: postgres://…/<db>?table=<outbox> or kafka://host:9092/<topic>?group=<id> (repeat for several; docs/ingest.md)',
  },
  webhook: { flag: 'webhook', kind: 'string', arg: '<url>', check: checkWebhook, help: 'POST online/offline events to this URL (needs --webhook-secret)' },
  webhookSecret: { flag: 'webhook-secret', kind: 'string', arg: '<key>', sensitive: true, help: 'HMAC key that signs webhook bodies' },
  webhookBatch: { flag: 'webhook-batch', kind: 'integer', arg: '<n>', min: 1, max: 10_000, help: 'events per webhook request at most' },
  webhookTimeout: { flag: 'webhook-timeout', kind: 'integer', arg: '<ms>', min: 100, max: 600_000, help: 'how long a webhook request may take before it is retried' },
  webhookMaxPending: {
    flag: 'webhook-max-pending',
    kind: 'integer',
    arg: '<n>',
    min: 16,
    max: MAX,
    help: 'events waiting for the webhook at most, cluster-wide; past it new events are dropped (counted and logged)',
  },
  rpcHook: { flag: 'rpc-hook', kind: 'string', arg: '<url>', check: checkWebhook, help: 'POST client rpc frames to this URL; its answer is the reply' },
  connectHook: {
    flag: 'connect-hook',
    kind: 'string',
    arg: '<url>',
    check: checkWebhook,
    help: 'POST upgrades without a valid token (cookies, headers, query) to this URL; its answer names the user or refuses',
  },
  refreshHook: {
    flag: 'refresh-hook',
    kind: 'string',
    arg: '<url>',
    check: checkWebhook,
    help: 'POST connect-hook sessions to this URL before their expireAt; its answer extends them or ends them (4105)',
  },
  subscribeHook: {
    flag: 'subscribe-hook',
    kind: 'string',
    arg: '<url>',
    check: checkWebhook,
    help: 'POST client subscribes to namespaces with subscribeHook to this URL; 200 allows',
  },
  publishHook: {
    flag: 'publish-hook',
    kind: 'string',
    arg: '<url>',
    check: checkWebhook,
    help: "POST client publishes to namespaces with publishHook to this URL; 200 publishes, its data replacing the client's",
  },
  hookSecret: { flag: 'hook-secret', kind: 'string', arg: '<key>', sensitive: true, help: 'HMAC key that signs hook requests (default: --webhook-secret)' },
  hookTimeout: { flag: 'hook-timeout', kind: 'integer', arg: '<ms>', min: 10, max: 600_000, help: 'how long a hook request may take before the action is refused as unavailable' },
  hookMaxInFlight: {
    flag: 'hook-max-in-flight',
    kind: 'integer',
    arg: '<n>',
    min: 1,
    max: 100_000,
    help: 'hook requests in flight per node at most; past it actions are refused as unavailable at once',
  },
  tlsCert: { flag: 'tls-cert', kind: 'path', help: 'PEM certificate chain: serve HTTPS and WSS (with --tls-key; re-read on SIGHUP)' },
  tlsKey: { flag: 'tls-key', kind: 'path', help: 'PEM private key of --tls-cert (re-read on SIGHUP)' },
  trustProxy: { flag: 'trust-proxy', kind: 'boolean', help: 'take the client IP from X-Forwarded-For (its last address)' },
  permessageDeflate: {
    flag: 'permessage-deflate',
    kind: 'boolean',
    help: 'compress messages of 1 KiB and more when the client offers permessage-deflate',
  },
  msgpack: {
    flag: 'msgpack',
    kind: 'boolean',
    help: 'speak MessagePack (binary frames) to clients that offer the switchboard.v1.msgpack subprotocol',
  },
  writeDelay: {
    flag: 'write-delay',
    kind: 'integer',
    arg: '<ms>',
    min: 0,
    max: 100,
    help: "hold a socket's fan-out frames this long so that publications arriving meanwhile leave in one write (0: at the end of the event-loop tick)",
  },
  // HTTP hardening and origins (docs/security.md "HTTP, origins and what to put in front of a node").
  allowedOrigins: {
    flag: 'allowed-origins',
    kind: 'list',
    arg: '<origin>',
    check: checkOriginPattern,
    help: "browser origins besides the node's own allowed to open /ws, * matching any run of characters (e.g. https://*.example.com)",
  },
  httpIdleTimeout: {
    flag: 'http-idle-timeout',
    kind: 'integer',
    arg: '<seconds>',
    min: 1,
    max: 3600,
    help: 'close an HTTP connection (before any upgrade) after this many seconds without a byte either way',
  },
  headersTimeout: {
    flag: 'headers-timeout',
    kind: 'integer',
    arg: '<seconds>',
    min: 1,
    max: 600,
    help: "seconds a request's headers may take to arrive in full (slow senders are answered 408 and cut)",
  },
  firstFrameTimeout: {
    flag: 'first-frame-timeout',
    kind: 'integer',
    arg: '<ms>',
    min: 100,
    max: 60_000,
    help: 'how long a WebSocket upgraded without a token may take to send its connect frame before it is closed (4001)',
  },
  maxTcpConnections: {
    flag: 'max-tcp-connections',
    kind: 'integer',
    arg: '<n>',
    min: 1,
    max: MAX,
    help: 'TCP connections the HTTP server keeps open at most, WebSockets included (default: --max-connections + 1024)',
  },
  metricsPort: {
    flag: 'metrics-port',
    kind: 'integer',
    arg: '<port>',
    min: 0,
    max: 65535,
    help: 'serve /metrics on this port (same --host) instead of the main one, where it then answers 404',
  },
  serveSourcemaps: { flag: 'serve-sourcemaps', kind: 'boolean', help: "serve the browser SDK's sourcemap at /switchboard.js.map" },
  logLevel: { flag: 'log-level', kind: 'choice', choices: LOG_LEVELS, arg: '<level>', help: 'log verbosity' },
  ...LIMIT_SETTINGS,
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;

/**
 * Settings that existed and were removed, by flag, with why: giving one is
 * an error that says so (a flag, a config key) or a warning (a variable),
 * rather than an unknown name or a silently ignored value.
 */
export const REMOVED_SETTINGS: Readonly<Record<string, string>> = {
  'presence-ttl':
    "presence entries no longer expire: they live while their node does, and a dead node's entries go within --heartbeat × --dead-after-beats",
};

/** `--presence-ttl` → `presenceTtl`: the config-file key a removed flag had. */
export function removedFileKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Parsed values of one source (flags, env or file), each optional. */
export type SettingValues = { [K in SettingKey]?: ValueOf<(typeof SETTINGS)[K]> };

/** Where each value of a `SettingValues` came from, for messages: `--port`, `SWITCHBOARD_PORT`, `"port" in config file …`. */
export type Origins = { [K in SettingKey]?: string };

/** One source's values and their origins. */
export interface Layer {
  values: SettingValues;
  origins: Origins;
}

export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** The spec of a setting, widened to the union for generic code. */
export function specOf(key: SettingKey): SettingSpec {
  return SETTINGS[key];
}

/** `--max-frame-bytes` → `SWITCHBOARD_MAX_FRAME_BYTES`. */
export function envName(flag: string): string {
  return `SWITCHBOARD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** The config-file path of a setting: `port`, `limits.maxFrameBytes`. */
export function fileKey(key: SettingKey): string {
  const spec = specOf(key);
  return spec.section === undefined ? key : `${spec.section}.${key}`;
}

/** The flag that reads a config file; not a setting itself (a file cannot name another file). */
export const CONFIG_FLAG = 'config';

/** Sets one value in a layer. The one place where a key and a value of the union meet. */
export function setValue(layer: Layer, key: SettingKey, value: SettingValue, origin: string): void {
  (layer.values as Record<SettingKey, SettingValue>)[key] = value;
  layer.origins[key] = origin;
}

/** An empty layer. */
export function emptyLayer(): Layer {
  return { values: {}, origins: {} };
}
