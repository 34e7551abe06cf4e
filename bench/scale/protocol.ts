// What the coordinator (bench/scale.ts) and its load-generator processes
// (loadgen.ts) say to each other over the fork IPC channel: one command at a
// time, each answered by exactly one reply with the same `seq`. Latencies
// travel as sorted samples per phase, never one IPC message per delivery.
import type { Kind } from '../lib/servers.js';

/** How a generator's connections join: plain (personal only), in a room, or in the replay channel (recovery). */
export type Join = 'plain' | 'room' | 'replay';

export interface ConnectCommand {
  type: 'connect';
  kind: Kind;
  /** Server ports; connection i goes to ports[i % ports.length]. */
  ports: number[];
  /** User ids `u<first>` … `u<first + count - 1>`. */
  first: number;
  count: number;
  join: Join;
  /** New connections per second from this process (0: as fast as `concurrency` allows). */
  rate: number;
  /** Connections being opened at once, at most. */
  concurrency: number;
}

export interface ConnectReply {
  opened: number;
  failed: number;
  firstError?: string;
  seconds: number;
  /** Upgrade request → ready (Switchboard: `welcome`; Socket.IO: `connect`; ws: `open`), ms, sorted. */
  latencies: number[];
  /** The sum of the `nowMs()` at which each connection became ready: with the count, how long they have been open at any later time. */
  openedAtSum: number;
  /** This generator's worst event-loop delay while connecting, ms: a large one means the generator, not the server, delayed connects. */
  loopDelayMaxMs: number;
}

/** Start counting deliveries of payloads numbered 0 … messages-1 (a fresh phase). */
export interface ExpectCommand {
  type: 'expect';
  messages: number;
  /** Keep each delivery's latency (targeted, replay); off for large broadcasts, which keep only counts. */
  latencies: boolean;
  /** With `latencies`, keep one delivery's in this many (1 or absent: every one), so that a big fan-out stays a bounded sample. */
  latencyEvery?: number;
}

export interface ExpectReply {
  ok: true;
}

export interface CollectCommand {
  type: 'collect';
}

export interface CollectReply {
  received: number;
  /** Deliveries per payload number. */
  counts: number[];
  /** Connections that did not receive exactly `messages` payloads (broadcast: each should get every one). */
  connectionsOff: number;
  /** Publish-to-delivery ms, sorted (when asked for). */
  latencies: number[];
  /** This generator's worst event-loop delay in the phase, ms: a large one means the generator, not the server, delayed deliveries. */
  loopDelayMaxMs: number;
  /** hrtime ms of the first and last delivery. */
  firstAt: number;
  lastAt: number;
}

/** How many payloads arrived in this phase so far (cheap, for waiting). */
export interface CountCommand {
  type: 'count';
}

export interface CountReply {
  received: number;
}

export interface CloseCommand {
  type: 'close';
}

export interface CloseReply {
  closed: number;
}

/**
 * How the publisher sends a targeted message: over its WebSocket connections
 * (Switchboard `send` frames, a Socket.IO `send` event, a ws `send` frame),
 * one HTTP request each (Switchboard `POST /api/send`, the peers' `POST
 * /send`), or Switchboard's batch API through the server SDK
 * (`SwitchboardApi.send`, which goes out as `POST /api/batch` once its
 * requests in flight pile up).
 */
export const VIAS = ['ws', 'http', 'batch'] as const;
export type Via = (typeof VIAS)[number];

/** Publisher role: open `perPort` publishing connections (`via` ws; else one HTTP client) to each port, then send `count` targeted messages at `rate`/s. */
export interface PublishCommand {
  type: 'publish';
  kind: Kind;
  via: Via;
  /** `via` batch: the SDK's `maxInFlight` (requests under way before calls wait and leave as one batch). */
  batchInFlight: number;
  ports: number[];
  perPort: number;
  users: number;
  count: number;
  rate: number;
}

export interface PublishReply {
  sent: number;
  failed: number;
  firstError?: string;
  seconds: number;
  /** Sends per second actually achieved; below `rate` means this generator fell behind. */
  achievedRate: number;
  /** Ticks in which this process could not keep up (socket buffers over the limit or a late timer). */
  behindTicks: number;
}

/** Recovery: drop every connection (as a network loss would: no goodbye). Positions are remembered. */
export interface DropCommand {
  type: 'drop';
}

export interface DropReply {
  dropped: number;
  /** Connections that had no position to recover from (they would miss everything). */
  withoutPosition: number;
}

/** Recovery: reconnect every dropped connection from its position; reply when each has `missed` payloads or after `timeoutMs`. */
export interface RejoinCommand {
  type: 'rejoin';
  missed: number;
  concurrency: number;
  timeoutMs: number;
}

export interface RejoinReply {
  rejoined: number;
  failed: number;
  firstError?: string;
  /** Connections whose server said the recovery was incomplete (Switchboard `recovered: false`, Socket.IO `socket.recovered` false). */
  notRecovered: number;
  /** Connections that got all `missed` payloads. */
  complete: number;
  replayed: number;
  seconds: number;
}

export type Command = ConnectCommand | ExpectCommand | CollectCommand | CountCommand | CloseCommand | PublishCommand | DropCommand | RejoinCommand;

export interface ReplyOf {
  connect: ConnectReply;
  expect: ExpectReply;
  collect: CollectReply;
  count: CountReply;
  close: CloseReply;
  publish: PublishReply;
  drop: DropReply;
  rejoin: RejoinReply;
}

/** hrtime in ms: CLOCK_MONOTONIC, the same clock in every process on this machine, so cross-process latencies are exact. */
export const nowMs = (): number => {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
};

/** The payload every publication carries: its number in the phase and when it was sent. */
export interface Payload {
  n: number;
  t: number;
}

export const ROOM = 'room.bench';
export const REPLAY_CHANNEL = 'replay:bench';
