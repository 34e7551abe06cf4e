/**
 * Builds `NodeOptions` from flags, `SWITCHBOARD_*` environment variables and
 * the `--config` file. Precedence: flags > environment > file > defaults.
 * Pure apart from `readFile`: tests pass argv, env and a reader and need no
 * subprocess. Every problem is a `ConfigError` with a one-line message.
 */
import { readFileSync } from 'node:fs';
import { withDefaults, type NodeOptions } from '../options.js';
import { checkAvailability } from './availability.js';
import { parseEnv, type Env } from './env.js';
import { ConfigError, describeReadError } from './errors.js';
import { parseConfigFile, type ParsedFile } from './file.js';
import { parseFlags } from './flags.js';
import { unsetHookProblem } from './namespaces.js';
import { readPublicKey, type ReadFile } from './keys.js';
import { readTlsPair } from './tls-files.js';
import { emptyLayer, type Layer, type Origins, type SettingValues } from './settings.js';

/** What `loadConfig` reads. */
export interface LoadInput {
  /** The flags after `start`. */
  argv: readonly string[];
  /** The environment (default: none; the CLI passes `process.env`). */
  env?: Env;
  /** Reads a file as UTF-8 text (default: `fs.readFileSync`). Used for `--config`, `--public-key`, `--tls-cert` and `--tls-key`. */
  readFile?: ReadFile;
  /** Resolves relative paths given by flags and env (default: `process.cwd()`). */
  cwd?: string;
}

/** Complete options, and what is worth a warning. */
export interface LoadedConfig {
  options: NodeOptions;
  /** One line each, for problems that do not stop the node. */
  warnings: string[];
  /** The config file that was read (absolute path), if any. */
  configFile?: string;
}

/** HS256 keys shorter than this are guessable; they are accepted with a warning. */
export const MIN_SECRET_LENGTH = 32;

/**
 * Where an `--insecure` node listens unless a host is given (flag, environment
 * or config file): a node that lets anyone in as any user stays on this machine.
 */
export const INSECURE_DEFAULT_HOST = '127.0.0.1';

const defaultReadFile: ReadFile = (path) => readFileSync(path, 'utf8');

/** Loads and checks the options; throws `ConfigError`. */
export function loadOptions(input: LoadInput): NodeOptions {
  return loadConfig(input).options;
}

/** Loads and checks the options, with warnings; throws `ConfigError`. */
export function loadConfig(input: LoadInput): LoadedConfig {
  const cwd = input.cwd ?? process.cwd();
  const readFile = input.readFile ?? defaultReadFile;
  const flags = parseFlags(input.argv, cwd);
  const env = parseEnv(input.env ?? {}, cwd);
  const configFile = flags.config ?? env.config;
  const configOrigin = flags.config !== undefined ? '--config' : 'SWITCHBOARD_CONFIG';
  const file = configFile === undefined ? undefined : readConfig(configFile, configOrigin, readFile);
  const { values, origins } = merge([file?.layer ?? emptyLayer(), env.layer, flags.layer]);

  checkAvailability(values, origins);
  const publicKey =
    values.publicKey === undefined ? undefined : readPublicKey(values.publicKey, origins.publicKey ?? '--public-key', readFile);
  checkTls(values, origins, readFile);
  // --insecure lets anyone in as any user: a node with keys would silently accept connections without them.
  if (values.insecure === true && (values.secret !== undefined || publicKey !== undefined)) {
    const key = values.secret !== undefined ? (origins.secret ?? '--secret') : (origins.publicKey ?? '--public-key');
    throw new ConfigError(
      `--insecure (from ${origins.insecure ?? '--insecure'}) cannot be combined with a token key (${key}): it would accept ?user=<id> without a token; drop one of them`,
    );
  }
  // The connect hook names users by itself (cookie sessions): a node may take no tokens at all.
  if (values.secret === undefined && publicKey === undefined && values.insecure !== true && values.connectHook === undefined) {
    throw new ConfigError(
      'no authentication configured, so every connection would be refused: pass --secret, --public-key or --insecure (development only)',
    );
  }

  const warnings = [...env.warnings];
  if (values.secret !== undefined && values.secret.length < MIN_SECRET_LENGTH) {
    const origin = origins.secret ?? '--secret';
    warnings.push(`the secret (from ${origin}) is shorter than ${MIN_SECRET_LENGTH} characters and easy to guess: use a long random one`);
  }
  const options = toOptions(values, publicKey, file);
  const unset = unsetHookProblem(options, `config file ${configFile ?? ''}`);
  if (unset !== undefined) throw new ConfigError(unset);
  return configFile === undefined ? { options, warnings } : { options, warnings, configFile };
}

/** `--tls-cert` and `--tls-key` come together, and hold a usable pair (the node reads them again when it starts and on SIGHUP). */
function checkTls(values: SettingValues, origins: Origins, readFile: ReadFile): void {
  const { tlsCert, tlsKey } = values;
  if (tlsCert === undefined && tlsKey === undefined) return;
  if (tlsCert === undefined || tlsKey === undefined) {
    const [given, missing] = tlsCert === undefined ? [origins.tlsKey ?? '--tls-key', '--tls-cert'] : [origins.tlsCert ?? '--tls-cert', '--tls-key'];
    throw new ConfigError(`TLS needs both --tls-cert and --tls-key: ${given} is set, add ${missing}`);
  }
  readTlsPair({ cert: tlsCert, key: tlsKey, certOrigin: origins.tlsCert, keyOrigin: origins.tlsKey }, readFile);
}

function readConfig(path: string, origin: string, readFile: ReadFile): ParsedFile {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read the config file ${path} (from ${origin}): ${describeReadError(err)}`);
  }
  return parseConfigFile(text, path);
}

/** Later layers win. */
function merge(layers: readonly Layer[]): Layer {
  const merged = emptyLayer();
  for (const layer of layers) {
    Object.assign(merged.values, layer.values);
    Object.assign(merged.origins, layer.origins);
  }
  return merged;
}

function toOptions(v: SettingValues, publicKey: string | undefined, file: ParsedFile | undefined): NodeOptions {
  const limits = compact({
    maxFrameBytes: v.maxFrameBytes,
    maxConnections: v.maxConnections,
    maxConnectionsPerIpPerSecond: v.maxConnectionsPerIpPerSecond,
    maxHandshakesPerSecond: v.maxHandshakesPerSecond,
    maxHandshakesInFlight: v.maxHandshakesInFlight,
    maxMessagesPerSecond: v.maxMessagesPerSecond,
    maxSubscriptions: v.maxSubscriptions,
    maxSubscribesPerSecond: v.maxSubscribesPerSecond,
    maxBufferedBytes: v.maxBufferedBytes,
    maxBodyBytes: v.maxBodyBytes,
    maxPublishBytesPerMinute: v.maxPublishBytesPerMinute,
    maxUserPublishBytesPerMinute: v.maxUserPublishBytesPerMinute,
    maxNewChannelsPerMinute: v.maxNewChannelsPerMinute,
    maxUserNewChannelsPerMinute: v.maxUserNewChannelsPerMinute,
    maxReplayBytesPerSecond: v.maxReplayBytesPerSecond,
    maxConnectionsPerIp: v.maxConnectionsPerIp,
    maxConnectionsPerUser: v.maxConnectionsPerUser,
    maxSubscriptionsPerNode: v.maxSubscriptionsPerNode,
  });
  return withDefaults(
    compact({
      port: v.port,
      host: v.host ?? (v.insecure === true ? INSECURE_DEFAULT_HOST : undefined),
      nodeId: v.nodeId,
      broker: v.broker,
      routing: v.routing,
      advertiseUrl: v.advertiseUrl,
      hashringRedirect: v.hashringRedirect,
      hashringVnodes: v.hashringVnodes,
      secret: v.secret,
      publicKey,
      jwtAudience: v.jwtAudience,
      jwtIssuer: v.jwtIssuer,
      jwtMaxLifetime: v.jwtMaxLifetime,
      jwtClockSkew: v.jwtClockSkew,
      apiKeys: v.apiKeys,
      insecure: v.insecure,
      drainTimeout: v.drainTimeout,
      idempotencyWindow: v.idempotencyWindow,
      publishDeadline: v.publishDeadline,
      workers: v.workers,
      ping: v.ping,
      pongTimeout: v.pongTimeout,
      heartbeat: v.heartbeat,
      deadAfterBeats: v.deadAfterBeats,
      clusterSecrets: v.clusterSecrets,
      ingest: v.ingest,
      webhook: v.webhook,
      webhookSecret: v.webhookSecret,
      webhookBatch: v.webhookBatch,
      webhookTimeout: v.webhookTimeout,
      webhookMaxPending: v.webhookMaxPending,
      rpcHook: v.rpcHook,
      connectHook: v.connectHook,
      refreshHook: v.refreshHook,
      subscribeHook: v.subscribeHook,
      publishHook: v.publishHook,
      hookSecret: v.hookSecret,
      hookTimeout: v.hookTimeout,
      hookMaxInFlight: v.hookMaxInFlight,
      tlsCert: v.tlsCert,
      tlsKey: v.tlsKey,
      trustProxy: v.trustProxy,
      permessageDeflate: v.permessageDeflate,
      msgpack: v.msgpack,
      writeDelay: v.writeDelay,
      allowedOrigins: v.allowedOrigins,
      httpIdleTimeout: v.httpIdleTimeout,
      headersTimeout: v.headersTimeout,
      firstFrameTimeout: v.firstFrameTimeout,
      maxTcpConnections: v.maxTcpConnections,
      metricsPort: v.metricsPort,
      serveSourcemaps: v.serveSourcemaps,
      logLevel: v.logLevel,
      limits,
      defaultNamespace: file?.defaultNamespace,
      namespaces: file?.namespaces,
    }),
  );
}

/** The object without its undefined fields, so that they do not hide the defaults `withDefaults` spreads under them. */
function compact<T extends object>(object: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
