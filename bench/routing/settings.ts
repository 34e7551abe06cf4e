// The routing benchmark's knobs: limits, timeouts, the strategies as
// started on the nodes, and the parsed command line's shape.

export const ROOM_SIZE = 20;
/** Share of publications that are `/api/send` to one user; the rest go to a room. */
export const SEND_SHARE = 0.8;
export const CONNECT_CONCURRENCY = 20;
export const WS_TIMEOUT_MS = 5_000;
/** After the last publication, how long the clients may take to get every copy. */
export const DELIVERY_TIMEOUT_MS = 20_000;
/** After the last expected copy, how long to keep listening for duplicates. */
export const DUPLICATE_GRACE_MS = 300;
/** 4102 redirects one connection attempt follows at most. */
export const MAX_HOPS = 4;
export const RECONNECT_ATTEMPTS = 10;
export const RECONNECT_BACKOFF_MS = 200;
/** The moved-users part: cluster heartbeat, and heartbeats without a disconnect before the moves count as over. */
export const MOVE_HEARTBEAT_S = 1;
export const QUIET_BEATS = 3;
export const MOVE_TIMEOUT_MS = 30_000;
export const RING_KEYS = 100_000;
export const RING_VNODES = 160;
/** The nodes' ring settle time with the default heartbeat (2 s) and dead-after-beats (3), plus a margin. */
export const RING_SETTLE_MS = 2 * 3 * 1000 + 500;
export const BASELINE = 'broadcast';
/** A chat-sized payload. */
export const TEXT = 'The quick brown fox jumps over the lazy dog while the build is green and nobody is on call.';

export type StrategyName = 'broadcast' | 'interest' | 'registry' | 'hashring' | 'hashring-any';

export interface Strategy {
  name: StrategyName;
  /** As printed. */
  label: string;
  args: string[];
  /** Users connect to their owner (`/api/route`) and nodes redirect with 4102. */
  redirect: boolean;
  /**
   * Hash-ring routing: after its start and after a ring change a node sends
   * messages to users to every node, for heartbeat × dead-after-beats; the
   * window waits that out.
   */
  settles: boolean;
}

export const STRATEGIES: Record<StrategyName, Strategy> = {
  broadcast: { name: 'broadcast', label: 'broadcast', args: ['--routing', 'broadcast'], redirect: false, settles: false },
  interest: { name: 'interest', label: 'interest', args: ['--routing', 'interest'], redirect: false, settles: false },
  registry: { name: 'registry', label: 'registry', args: ['--routing', 'registry'], redirect: false, settles: false },
  hashring: { name: 'hashring', label: 'hashring', args: ['--routing', 'hashring', '--hashring-redirect'], redirect: true, settles: true },
  'hashring-any': { name: 'hashring-any', label: 'hashring (any node)', args: ['--routing', 'hashring'], redirect: false, settles: true },
};

export type BrokerName = 'redis' | 'nats' | 'rabbitmq';

export interface BrokerKind {
  name: BrokerName;
  /** As printed. */
  label: string;
  /** The strategies its node refuses are left out (NATS: no registry, no hash ring). */
  strategies: readonly StrategyName[];
}

const EVERY_STRATEGY = Object.keys(STRATEGIES) as StrategyName[];

export const BROKERS: Record<BrokerName, BrokerKind> = {
  redis: { name: 'redis', label: 'Redis', strategies: EVERY_STRATEGY },
  nats: { name: 'nats', label: 'NATS', strategies: ['broadcast', 'interest'] },
  rabbitmq: { name: 'rabbitmq', label: 'RabbitMQ', strategies: EVERY_STRATEGY },
};

/** The RabbitMQ the benchmark uses (already running; the benchmark does not start one). */
export const RABBITMQ_PORT = 5672;
export const RABBITMQ_USER = 'guest:guest';
/** `rabbitmqctl` answers within this, or its figures are n/a. */
export const RABBITMQCTL_TIMEOUT_MS = 15_000;

export interface Args {
  /** Brokers in order; each runs the strategies of `strategies` it carries. */
  brokers: BrokerName[];
  nodes: number[];
  users: number;
  messages: number;
  rate: number;
  warmup: number;
  /** Runs per (strategy, N), in rotated order; the tables show medians. */
  repeat: number;
  strategies: StrategyName[];
  moved: boolean;
  out: string | undefined;
}
