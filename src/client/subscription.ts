/**
 * A subscription to one channel. It outlives connections: on every
 * (re)connect the client re-subscribes it from the last position delivered,
 * and the app sees recovered messages, then live ones, each exactly once.
 */
import type { MemberFrame, Publication, PublishResult, StreamPosition, SubscribeResult } from '../protocol/index.js';
import { ErrorCode } from '../protocol/index.js';
import { applyRecovery, StreamCursor } from './cursor.js';
import { Emitter } from './emitter.js';
import { ClientError, LocalErrorCode, type ClientErrorCode } from './errors.js';
import type { ResetEvent, SubscriptionEvents, SubscriptionState } from './events.js';

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  isConnected(): boolean;
  /** Add to / remove from the client's registry (throws if another subscription holds the channel). */
  register(sub: Subscription): void;
  unregister(sub: Subscription): void;
  requestSubscribe(channel: string, since: StreamPosition | undefined): Promise<SubscribeResult>;
  requestUnsubscribe(channel: string): Promise<unknown>;
  publish(channel: string, data: unknown): Promise<PublishResult>;
  /** A message was delivered to the app: forward it to the client's `message` event and ack it. */
  delivered(pub: Publication): void;
  /** Recovery failed: forward to the client's `reset` event. */
  reset(event: ResetEvent): void;
  /** Backoff for re-trying a refused-for-now subscription. */
  retryDelay(attempt: number): number;
  readonly maxBuffered: number;
}

/** Refusals worth retrying while connected; any other error code ends the subscription. */
const TRANSIENT: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  LocalErrorCode.Timeout,
  ErrorCode.Unavailable,
  ErrorCode.Internal,
  ErrorCode.RateLimited,
]);

export class Subscription extends Emitter<SubscriptionEvents> {
  /** The channel name. */
  readonly channel: string;
  private currentState: SubscriptionState = 'unsubscribed';
  private readonly cursor = new StreamCursor();
  /** Bumped whenever an in-flight subscribe becomes stale (drop, unsubscribe, retry). */
  private generation = 0;
  /** Live messages that arrived while the subscribe reply was in flight. */
  private buffer: Publication[] = [];
  private retryAttempt = 0;
  /** A subscribe frame went out on the current connection (so the server may hold the subscription). */
  private sentOnConnection = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  /** @internal Created by `SwitchboardClient.subscribe`. */
  constructor(
    private readonly host: SubscriptionHost,
    channel: string,
  ) {
    super();
    this.channel = channel;
  }

  /** `unsubscribed` → `subscribing` (waiting for a connection or a reply) → `subscribed`. */
  get state(): SubscriptionState {
    return this.currentState;
  }

  /** The last position delivered (or reported by the server): where a re-subscription recovers from. */
  get position(): StreamPosition | undefined {
    return this.cursor.position;
  }

  /** Subscribe now, or as soon as the client is connected. Idempotent. */
  subscribe(): void {
    if (this.currentState !== 'unsubscribed') return;
    this.host.register(this);
    this.setState('subscribing');
    if (this.host.isConnected()) this.sendSubscribe();
  }

  /** Stop receiving; tells the server when connected. Keeps the position, so `subscribe()` later recovers. */
  unsubscribe(): void {
    if (this.currentState === 'unsubscribed') return;
    const wasSent = this.sentOnConnection;
    this.sentOnConnection = false;
    this.stop();
    this.host.unregister(this);
    this.setState('unsubscribed');
    if (wasSent && this.host.isConnected()) {
      // Nothing to do if it fails: the server drops the subscription with the connection anyway.
      this.host.requestUnsubscribe(this.channel).catch(() => undefined);
    }
    this.emit('unsubscribed', { channel: this.channel, reason: 'unsubscribe' });
  }

  /** Publish to this channel; see `SwitchboardClient.publish`. */
  publish(data: unknown): Promise<PublishResult> {
    return this.host.publish(this.channel, data);
  }

  /**
   * Resolves once subscribed (at once if already), rejects if the
   * subscription ends first or after `timeout` ms (default: wait as long as
   * the subscription is wanted).
   */
  ready(timeout?: number): Promise<void> {
    if (this.currentState === 'subscribed') return Promise.resolve();
    if (this.currentState === 'unsubscribed') {
      return Promise.reject(new ClientError(LocalErrorCode.Disconnected, `not subscribed to ${this.channel}`));
    }
    return new Promise<void>((resolve, reject) => {
      const cleanups: Array<() => void> = [];
      const done = (err?: ClientError): void => {
        for (const cleanup of cleanups) cleanup();
        if (err) reject(err);
        else resolve();
      };
      cleanups.push(
        this.once('subscribed', () => done()),
        this.once('unsubscribed', (e) => done(new ClientError(LocalErrorCode.Disconnected, `subscription ended: ${e.reason}`))),
      );
      if (timeout !== undefined) {
        const timer = setTimeout(
          () => done(new ClientError(LocalErrorCode.Timeout, `not subscribed to ${this.channel} within ${timeout} ms`)),
          timeout,
        );
        cleanups.push(() => clearTimeout(timer));
      }
    });
  }

  /** @internal The client got a `welcome`: (re)subscribe. */
  _connected(): void {
    if (this.currentState === 'unsubscribed') return;
    this.retryAttempt = 0;
    this.setState('subscribing');
    this.sendSubscribe();
  }

  /** @internal The connection dropped: wait for the next one. */
  _disconnected(): void {
    if (this.currentState === 'unsubscribed') return;
    this.stop();
    this.sentOnConnection = false;
    this.setState('subscribing');
  }

  /** @internal A live `message` frame for this channel. */
  _message(pub: Publication): void {
    if (this.currentState === 'subscribed') {
      this.deliver(pub);
    } else if (this.currentState === 'subscribing') {
      if (this.buffer.length >= this.host.maxBuffered) {
        this.emit('error', {
          channel: this.channel,
          error: new ClientError(LocalErrorCode.QueueFull, `more than ${this.host.maxBuffered} messages arrived before the subscribe reply; dropped`),
        });
        return;
      }
      this.buffer.push(pub);
    }
  }

  /** @internal A `join` or `leave` frame for this channel: emitted while subscribed (a re-subscription misses those in between). */
  _member({ type, channel, user, session }: MemberFrame): void {
    if (this.currentState === 'subscribed') this.emit(type, { channel, user, session });
  }

  private sendSubscribe(): void {
    const generation = ++this.generation;
    const since = this.cursor.since;
    this.buffer = [];
    this.sentOnConnection = true;
    this.host.requestSubscribe(this.channel, since).then(
      (result) => {
        if (generation === this.generation) this.subscribed(result, since);
      },
      (err: unknown) => {
        if (generation === this.generation) this.refused(err);
      },
    );
  }

  private subscribed(result: SubscribeResult, since: StreamPosition | undefined): void {
    const buffered = this.buffer;
    this.buffer = [];
    this.retryAttempt = 0;
    const messages = Array.isArray(result?.messages) ? result.messages : [];
    applyRecovery(this.cursor, since, { ...result, messages }, buffered, {
      reset: () => {
        const event = { channel: this.channel, ...this.cursor.position };
        this.emit('reset', event);
        this.host.reset(event);
      },
      ready: ({ wasRecovering, recovered }) => {
        this.setState('subscribed');
        const pos = definedOnly({ offset: result.offset, epoch: result.epoch });
        this.emit('subscribed', { channel: this.channel, wasRecovering, recovered, ...pos });
      },
      deliver: (pub) => {
        // A listener may have unsubscribed in the middle of the batch.
        if (this.currentState === 'subscribed') this.emitMessage(pub);
      },
    });
  }

  private refused(err: unknown): void {
    const error = err instanceof ClientError ? err : new ClientError(ErrorCode.Internal, String(err));
    if (error.code === LocalErrorCode.Disconnected) return; // `_connected` re-subscribes.
    this.emit('error', { channel: this.channel, error });
    if (TRANSIENT.has(error.code)) {
      if (this.host.isConnected()) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          if (this.currentState === 'subscribing' && this.host.isConnected()) this.sendSubscribe();
        }, this.host.retryDelay(this.retryAttempt++));
      }
      return;
    }
    this.stop();
    this.sentOnConnection = false;
    this.host.unregister(this);
    this.setState('unsubscribed');
    this.emit('unsubscribed', { channel: this.channel, reason: error.code });
  }

  /** A live message: de-duplicate, then emit. */
  private deliver(pub: Publication): void {
    if (this.cursor.accept(pub)) this.emitMessage(pub);
  }

  private emitMessage(pub: Publication): void {
    this.emit('message', pub);
    this.host.delivered(pub);
  }

  /** Invalidate the in-flight subscribe and any retry. */
  private stop(): void {
    this.generation++;
    this.buffer = [];
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private setState(state: SubscriptionState): void {
    if (state === this.currentState) return;
    const previous = this.currentState;
    this.currentState = state;
    this.emit('state', { previous, state });
  }

  protected override listenerFailed(err: unknown, event: keyof SubscriptionEvents): void {
    if (event === 'error') return super.listenerFailed(err, event);
    this.emit('error', { channel: this.channel, error: new ClientError(LocalErrorCode.Listener, `a "${String(event)}" listener threw`, err) });
  }
}

function definedOnly(pos: { offset?: number | undefined; epoch?: string | undefined }): { offset?: number; epoch?: string } {
  const out: { offset?: number; epoch?: string } = {};
  if (pos.offset !== undefined) out.offset = pos.offset;
  if (pos.epoch !== undefined) out.epoch = pos.epoch;
  return out;
}
