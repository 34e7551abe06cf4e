/**
 * One client connection: its identity, its subscriptions with their
 * positions, its limits and its heartbeat state. Delivery goes through
 * `deliver`, which de-duplicates by offset and holds messages back while a
 * subscription is still recovering; all teardown goes through `disconnect`.
 */
import { CloseCode, encodeMessage, type DisconnectFrame, type Publication, type ServerFrame, type SubscribeResult, type WelcomeFrame } from '../../protocol/index.js';
import { encodeMessageBinary, encodeServerFrameBinary, type WireCodec } from '../../protocol/msgpack.js';
import type { Limits } from '../options.js';
import { FrameBudget, WindowCounter, type Admission, type FrameKind } from './rate.js';

/**
 * A publication encoded for delivery, built once per publication and shared
 * by all its subscribers. Transports may fill the lazily built slots (the
 * complete WebSocket frame) on first use so that the rest reuse them; a
 * second encoding (a binary subprotocol) would add its own pair of slots.
 */
export interface Outgoing {
  readonly pub: Publication;
  /** The `message` frame as JSON text. */
  readonly text: Buffer;
  /** `text` framed as a complete WebSocket text frame, built by the first transport that writes raw frames. */
  textFrame?: Buffer;
  /** The `message` frame as MessagePack, built by the first subscriber on that codec (`binaryMessage`); never built without one. */
  binary?: Buffer;
  /** `binary` framed as a complete WebSocket binary frame, like `textFrame`. */
  binaryFrame?: Buffer;
}

/** A view of encoded bytes as a Buffer, without a copy. */
const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * The publication's `message` frame as MessagePack: encoded by the first
 * subscriber on the binary codec and shared by the others, so a publication
 * is encoded at most once per codec, and never for MessagePack when no
 * subscriber speaks it.
 */
export function binaryMessage(message: Outgoing): Buffer {
  return (message.binary ??= asBuffer(encodeMessageBinary(message.pub)));
}

/** What a session writes to: a WebSocket in production, a recorder in unit tests. */
export interface Transport {
  send(data: Buffer | string): void;
  /**
   * Write a fan-out `message` frame. Optional: without it `send(message.text)`
   * is used. The WebSocket transport writes the shared pre-built frame.
   */
  sendMessage?(message: Outgoing): void;
  close(code: number, reason: string): void;
  /** Bytes queued but not yet written to the network. */
  readonly bufferedAmount: number;
  /** Stop reading the client's frames (back-pressure: the broker is behind on this client's work), and start again. */
  pause?(): void;
  resume?(): void;
  /** Keep a quiet connection open in the transport's own way, which the client does not answer (SSE); without it, `ping` frames. */
  keepAlive?(): void;
}

/** A subscription's delivery state. */
interface ChannelState {
  /** Set while the subscription is recovering: live messages wait here, in order. */
  pending: Outgoing[] | null;
  /** The newest offset delivered (or covered by the subscribe reply), and its epoch. */
  offset: number;
  epoch: string | undefined;
}

/** Live messages held back per recovering subscription before the session is judged too slow. */
const MAX_PENDING = 10_000;
/** How long a recovery that does not fit one reply waits for the socket to drain before the client counts as too slow. */
const DRAIN_TIMEOUT_MS = 30_000;
/**
 * Frames waiting for earlier ones to finish (e.g. on a slow broker) before
 * new ones are refused. Subscription changes wait in the same line but are
 * counted apart, up to twice the subscription limit, so that a client's
 * whole (re)subscription, leaving all of it, and the requests it sends
 * meanwhile all wait their turn.
 */
const MAX_QUEUED = 1000;
/**
 * Work in flight (frames waiting plus publishes at the broker) at which the
 * session stops reading its client, and at which it reads again: a busy
 * publisher is slowed by TCP back-pressure long before `MAX_QUEUED` refuses
 * it (what one socket read already holds still arrives after the pause).
 */
const PAUSE_AT = 128;
const RESUME_AT = 64;
/** The reason of a 4129 close, by the kind of frame the client overspent on: it names the setting. */
const RATE_LIMITED: Readonly<Record<FrameKind, string>> = {
  frame: 'rate limited: too many frames (--max-messages-per-second)',
  subscribe: 'rate limited: too many subscribe/unsubscribe frames (--max-subscribes-per-second)',
  unsubscribe: 'rate limited: too many subscribe/unsubscribe frames (--max-subscribes-per-second)',
};
/** Malformed frames tolerated per 10 seconds before closing with 4008. */
const MAX_MALFORMED = 10;

export interface SessionInit {
  id: string;
  user: string;
  /** Which of the user's devices this is (`?device=`), '' when not told: whose acknowledged position the session moves. */
  device?: string;
  /** Channel patterns granted by the token. */
  grants: string[];
  /** When the token expires (its `exp`, Unix seconds); the session is closed then unless refreshed. */
  expires?: number;
  /** The connect hook's `meta`, for a session that hook accepted. */
  meta?: unknown;
  /** How frames are encoded on this connection (the negotiated subprotocol). Default `json`. */
  codec?: WireCodec;
  transport: Transport;
  limits: Limits;
  now: number;
  /** Called once, when the session is closed from either side. */
  onClosed: (session: Session) => void;
  /** Called for each frame written, with its type (metrics); `message` frames of a fan-out are counted by the caller. */
  onFrameOut?: (type: ServerFrame['type']) => void;
}

export class Session {
  readonly id: string;
  readonly user: string;
  readonly device: string;
  /** Channel patterns granted by the token; replaced by a `refresh` (checked at subscribe and publish time). */
  grants: string[];
  /** When the identity expires (Unix seconds), if it does: the heartbeat sweep closes the session then with 4105. */
  expires: number | undefined;
  /** The connect hook's `meta` (`null` when it gave none); undefined for a session opened with a token. */
  readonly meta: unknown;
  /** When the heartbeat sweep asks the refresh hook to extend `expires` (ms); undefined while not planned or a call is out. */
  refreshAt: number | undefined;
  /** `json` (text frames) or `msgpack` (binary frames), fixed at the upgrade. */
  readonly codec: WireCodec;
  /** Every channel this session is subscribed to or subscribing to, its personal channel included. */
  readonly channels = new Map<string, ChannelState>();
  closed = false;
  /** The close code the server closed with, if it did, and its reason. */
  closeCode: number | undefined;
  closeReason: string | undefined;
  lastSentAt: number;
  /** When the server's unanswered `ping` was sent, if one is outstanding. */
  pingSentAt: number | undefined;

  /** Frames are handled one after another, in the order they arrived: the last frame task queued, while any is (an idle session keeps no promise). */
  private queue: Promise<void> | undefined;
  private queued = 0;
  /** Of those, subscription changes (see `MAX_QUEUED`). */
  private queuedChanges = 0;
  /** Publishes of this connection at the broker, and the last one per channel (see `publishInOrder`); no map while none ever ran. */
  private publishing = 0;
  private publishTails: Map<string, Promise<void>> | undefined;
  /** Reading is paused (see `PAUSE_AT`). */
  private paused = false;
  private readonly transport: Transport;
  private readonly limits: Limits;
  private readonly onClosed: (session: Session) => void;
  private readonly onFrameOut: (type: ServerFrame['type']) => void;
  private readonly budget: FrameBudget;
  /** Made at the first malformed frame. */
  private malformed: WindowCounter | undefined;

  constructor(init: SessionInit) {
    this.id = init.id;
    this.user = init.user;
    this.device = init.device ?? '';
    this.grants = init.grants;
    this.expires = init.expires;
    this.meta = init.meta;
    this.codec = init.codec ?? 'json';
    this.transport = init.transport;
    this.limits = init.limits;
    this.onClosed = init.onClosed;
    this.onFrameOut = init.onFrameOut ?? (() => undefined);
    this.lastSentAt = init.now;
    this.budget = new FrameBudget(init.limits);
  }

  /** Count of subscriptions the client asked for (the personal channel is not one). */
  get subscriptionCount(): number {
    return this.channels.size - 1;
  }

  /**
   * Record a received frame of `kind` (see `FrameBudget`): 'ok',
   * 'limited' (reply rate_limited), or 'closed' (4129 sent: the client kept
   * sending while limited).
   */
  admit(kind: FrameKind, now: number): Exclude<Admission, 'abuse'> | 'closed' {
    this.pingSentAt = undefined;
    const admitted = this.budget.take(kind, now);
    if (admitted !== 'abuse') return admitted;
    this.disconnect(CloseCode.RateLimited, RATE_LIMITED[kind], true);
    return 'closed';
  }

  /** Record a malformed frame; closes with 4008 on repeated abuse. Returns whether the session is still open. */
  noteMalformed(now: number): boolean {
    this.malformed ??= new WindowCounter(MAX_MALFORMED, 10_000, now);
    if (this.malformed.hit(now)) this.disconnect(CloseCode.PolicyViolation, 'too many malformed frames', false);
    return !this.closed;
  }

  /**
   * Run `task` after every task queued before it; `kind` is the frame it
   * handles (see `MAX_QUEUED`). False (and `task` not run) when too many are
   * waiting: the broker is not keeping up with this client.
   */
  enqueue(task: () => Promise<void>, kind: FrameKind = 'frame'): boolean {
    const change = kind !== 'frame';
    if (change ? this.queuedChanges >= 2 * this.limits.maxSubscriptions : this.queued - this.queuedChanges >= MAX_QUEUED) return false;
    this.queued++;
    if (change) this.queuedChanges++;
    this.loaded();
    const tail: Promise<void> = (this.queue ?? Promise.resolve())
      .then(task)
      // Tasks report their own errors; one that throws anyway is a bug, and
      // the session cannot be trusted to be consistent after it.
      .catch(() => this.disconnect(1011, 'internal error', true))
      .finally(() => {
        if (change) this.queuedChanges--;
        if (--this.queued === 0 && this.queue === tail) this.queue = undefined;
        this.eased();
      });
    this.queue = tail;
    return true;
  }

  /** Settles when the frame tasks queued so far have run (read-only view of the queue; tests wait on it). */
  get settled(): Promise<void> {
    return this.queue ?? Promise.resolve();
  }

  /**
   * Run a publish of this connection on `channel`: after the ones it made
   * earlier on the same channel (their order is kept), but without waiting
   * for those on other channels, so one connection can have many publishes
   * at the broker at once instead of one round trip per message. Undefined
   * (and `publish` not run) when `MAX_QUEUED` are in flight already.
   */
  publishInOrder<T>(channel: string, publish: () => Promise<T>): Promise<T> | undefined {
    const tails = (this.publishTails ??= new Map());
    const before = tails.get(channel);
    // The next publish on the channel waits for this one to settle, whatever its outcome.
    const result = this.runAside<T>(before ? () => before.then(publish) : publish);
    if (!result) return undefined;
    const forget = (): void => {
      if (tails.get(channel) === tail) tails.delete(channel);
    };
    const tail: Promise<void> = result.then(forget, forget);
    tails.set(channel, tail);
    return result;
  }

  /**
   * Run `work` beside the frame queue: a publish (through `publishInOrder`)
   * or an `rpc` waits on the broker or the backend without holding up the
   * frames after it. Counted together (the `MAX_QUEUED` bound and the
   * reading pause), so one connection cannot keep unbounded work out.
   * Undefined (and `work` not run) when full.
   */
  runAside<T>(work: () => Promise<T>): Promise<T> | undefined {
    if (this.publishing >= MAX_QUEUED) return undefined;
    this.publishing++;
    this.loaded();
    const result = work();
    const done = (): void => {
      this.publishing--;
      this.eased();
    };
    result.then(done, done);
    return result;
  }

  /** Work was added: past `PAUSE_AT`, stop reading the client. */
  private loaded(): void {
    if (!this.paused && this.queued + this.publishing >= PAUSE_AT) {
      this.paused = true;
      this.transport.pause?.();
    }
  }

  /** Work finished: at `RESUME_AT`, read the client again. */
  private eased(): void {
    if (this.paused && this.queued + this.publishing <= RESUME_AT) {
      this.paused = false;
      this.transport.resume?.();
    }
  }

  /** Begin a subscription: live messages are held until `ready` is called. */
  begin(channel: string): void {
    this.channels.set(channel, { pending: [], offset: 0, epoch: undefined });
  }

  /**
   * Finish a subscription's recovery: `respond` sends the reply (or welcome)
   * carrying the first recovered messages; `rest`, the recovered messages it
   * could not carry, follow as `message` frames, each written once the
   * socket has drained below a quarter of the buffer limit; then the held
   * live messages that come after `position` are written.
   */
  async ready(
    channel: string,
    position: { offset: number; epoch: string | undefined },
    respond: () => void,
    rest: readonly Publication[] = [],
  ): Promise<void> {
    if (this.closed) return;
    const state = this.channels.get(channel);
    // Unsubscribed while recovering: the subscribe still gets its one reply.
    if (!state) return respond();
    respond();
    for (const pub of rest) {
      if (!(await this.drained())) return;
      if (this.channels.get(channel) !== state) return; // unsubscribed meanwhile
      const bytes = this.codec === 'msgpack' ? asBuffer(encodeMessageBinary(pub)) : Buffer.from(encodeMessage(pub));
      if (this.write(bytes)) this.onFrameOut('message');
    }
    if (this.closed) return;
    const pending = state.pending ?? [];
    state.pending = null;
    state.offset = position.offset;
    state.epoch = position.epoch;
    for (const message of pending) if (this.deliverMessage(message)) this.onFrameOut('message');
  }

  /**
   * Resolves true once the unsent bytes are under a quarter of the buffer
   * limit; false if the session closed, or after `DRAIN_TIMEOUT_MS`, when it
   * is closed as a slow consumer.
   */
  private async drained(): Promise<boolean> {
    const low = this.limits.maxBufferedBytes / 4;
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    while (!this.closed && this.transport.bufferedAmount > low) {
      if (Date.now() > deadline) {
        this.disconnect(CloseCode.SlowConsumer, 'slow consumer', true);
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return !this.closed;
  }

  /** Deliver a publication already encoded as a `message` frame (one-off deliveries; fan-out uses `deliverMessage`). */
  deliver(pub: Publication, bytes: Buffer, now = Date.now()): boolean {
    return this.deliverMessage({ pub, text: bytes }, now);
  }

  /**
   * The fan-out hot path: deliver a publication encoded once for all its
   * subscribers. Returns whether it was written. Allocates nothing per call
   * unless the subscription is recovering (then `message` is held).
   */
  deliverMessage(message: Outgoing, now = Date.now()): boolean {
    const pub = message.pub;
    const state = this.channels.get(pub.channel);
    if (!state || this.closed) return false;
    if (state.pending) {
      if (state.pending.length >= MAX_PENDING) {
        this.disconnect(CloseCode.SlowConsumer, 'too many messages while recovering', true);
        return false;
      }
      state.pending.push(message);
      return false;
    }
    if (pub.offset !== undefined) {
      if (pub.epoch === state.epoch && pub.offset <= state.offset) return false;
      state.offset = pub.offset;
      state.epoch = pub.epoch;
    }
    if (this.transport.sendMessage) this.transport.sendMessage(message);
    else this.transport.send(this.codec === 'msgpack' ? binaryMessage(message) : message.text);
    return this.written(now);
  }

  /** The newest position delivered on `channel` (or covered by its subscribe reply), once recovered. */
  delivered(channel: string): { offset: number; epoch: string } | undefined {
    const state = this.channels.get(channel);
    if (!state || state.pending || state.epoch === undefined) return undefined;
    return { offset: state.offset, epoch: state.epoch };
  }

  /** The `welcome` frame: this session, its node, and what the personal `channel` recovered. */
  welcome(node: string, channel: string, result: SubscribeResult, ping: number): void {
    const { offset = 0, epoch = '', recovered, messages } = result;
    const frame: WelcomeFrame = { type: 'welcome', session: this.id, node, user: this.user, channel, offset, epoch, recovered, messages, ping };
    if (this.expires !== undefined) frame.expires = this.expires;
    this.send(frame);
  }

  send(frame: ServerFrame): boolean {
    const written = this.write(this.encode(frame));
    if (written) this.onFrameOut(frame.type);
    return written;
  }

  /** A frame in this connection's codec: JSON text, or MessagePack bytes (the transport sends those as a binary message). */
  private encode(frame: ServerFrame): string | Buffer {
    return this.codec === 'msgpack' ? asBuffer(encodeServerFrameBinary(frame)) : JSON.stringify(frame);
  }

  /** Write the transport's keep-alive (see `Transport.keepAlive`); false when it has none, and a `ping` is due instead. */
  keepAlive(): boolean {
    this.transport.keepAlive?.();
    return this.transport.keepAlive !== undefined;
  }

  /** Write bytes; a connection whose unsent bytes pass the limit is closed with 4101. */
  write(data: Buffer | string, now = Date.now()): boolean {
    if (this.closed) return false;
    this.transport.send(data);
    return this.written(now);
  }

  /** After a write: note the time, and close with 4101 a connection whose unsent bytes passed the limit. */
  private written(now: number): boolean {
    this.lastSentAt = now;
    if (this.transport.bufferedAmount > this.limits.maxBufferedBytes) {
      this.disconnect(CloseCode.SlowConsumer, 'slow consumer', true);
      return false;
    }
    return true;
  }

  /**
   * The one way a session ends from the server side: a `disconnect` frame,
   * then the close. `url` tells a moved client (4102) where to reconnect.
   */
  disconnect(code: number, reason: string, reconnect: boolean, url?: string): void {
    if (this.closed) return;
    const frame: DisconnectFrame = url === undefined ? { type: 'disconnect', code, reason, reconnect } : { type: 'disconnect', code, reason, reconnect, url };
    this.transport.send(this.encode(frame));
    this.onFrameOut('disconnect');
    this.closed = true;
    this.closeCode = code;
    this.closeReason = reason;
    this.transport.close(code, reason);
    this.onClosed(this);
  }

  /** The connection went away on its own (client close, network error). */
  gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
  }
}
