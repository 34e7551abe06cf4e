/**
 * Handles one frame from a client: limits, decoding, permissions, and the
 * one reply each frame with an `id` gets. Errors from the client become
 * error replies (or `error` frames) and the connection stays open; repeated
 * abuse closes it (see `Session`).
 */
import {
  decodeClientFrame,
  ErrorCode,
  matchesPattern,
  personalChannel,
  personalChannelUser,
  PERSONAL_NAMESPACE,
  SwitchboardError,
  toErrorBody,
  type ClientFrame,
  type DecodeResult,
  type ErrorBody,
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import { decodeClientFrameBinary, type WireCodec } from '../../protocol/msgpack.js';
import { TokenError, TokenVerifier, type Identity } from '../auth/token.js';
import type { PublishHook } from '../hooks/publish.js';
import type { RpcHook } from '../hooks/rpc.js';
import type { SubscribeHook } from '../hooks/subscribe.js';
import type { Metrics } from '../metrics.js';
import type { Gateway } from './gateway.js';
import type { Quotas } from './quotas.js';
import type { FrameKind } from './rate.js';
import type { Session } from './session.js';

/** The refusal of a frame of the other kind: binary on a JSON connection, text on a MessagePack one. */
const WRONG_KIND: Readonly<Record<WireCodec, string>> = {
  json: 'binary frames are not supported: send JSON text',
  msgpack: 'text frames are not supported on a MessagePack connection: send MessagePack binary',
};

/** Decode a frame in the connection's codec; undefined for a frame of the other kind. */
function decodeIn(codec: WireCodec, data: Buffer | string, isBinary: boolean): DecodeResult | undefined {
  if (isBinary !== (codec === 'msgpack')) return undefined;
  if (codec === 'msgpack') return decodeClientFrameBinary(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  return decodeClientFrame(typeof data === 'string' ? data : data.toString('utf8'));
}

/** The hooks namespaces may ask (none: no namespace asks). */
export interface ChannelHooks {
  subscribe?: SubscribeHook;
  publish?: PublishHook;
}

/**
 * Run `task` in the session's frame queue (after the frames queued before
 * it) and settle with it: `rate_limited` when the queue is full; at once,
 * without running it, when the session closed meanwhile.
 */
function inQueue(session: Session, task: () => Promise<void>, kind: FrameKind): Promise<void> {
  return new Promise((resolve, reject) => {
    const queued = session.enqueue(async () => {
      if (session.closed) return resolve();
      await task().then(resolve, reject);
    }, kind);
    if (!queued) reject(new SwitchboardError(ErrorCode.RateLimited, 'too many requests in flight'));
  });
}

/** Subscription changes have their own budget (see `FrameBudget`); every other frame, malformed ones included, draws on the frame rate. */
function kindOf(decoded: DecodeResult | undefined): FrameKind {
  const type = decoded?.ok ? decoded.frame.type : undefined;
  return type === 'subscribe' || type === 'unsubscribe' ? type : 'frame';
}

export class FrameHandler {
  constructor(
    private readonly gateway: Gateway,
    private readonly metrics: Metrics,
    private readonly maxSubscriptions: number,
    /** Checks the tokens of `refresh` frames: the node's own verifier. Without one, every refresh is refused as `unauthorized`. */
    private readonly verifier: TokenVerifier = new TokenVerifier({}),
    /** Answers `rpc` frames; without one, each is answered `not_found`. */
    private readonly rpc?: RpcHook,
    /** The subscribe and publish hooks, asked for the namespaces that say so. */
    private readonly hooks: ChannelHooks = {},
    /** Quotas on writes, replays and the node's subscriptions; without them, none apply. */
    private readonly quotas?: Quotas,
  ) {}

  /** Handle a received WebSocket message: checks now, the work in the session's queue. Never throws. */
  receive(session: Session, data: Buffer | string, isBinary: boolean): void {
    const now = Date.now();
    const decoded = decodeIn(session.codec, data, isBinary);
    // A frame of the other kind is limited like any other (and, past the limit, not counted as malformed too).
    const kind = kindOf(decoded);
    const admitted = session.admit(kind, now);
    if (admitted === 'closed') return;
    if (admitted === 'limited') {
      const id = !decoded ? undefined : decoded.ok ? ('id' in decoded.frame ? decoded.frame.id : undefined) : decoded.id;
      this.fail(session, id, { code: ErrorCode.RateLimited, message: kind === 'frame' ? 'too many messages: slow down' : 'too many subscribes: slow down' });
      return;
    }
    if (!decoded) {
      this.fail(session, undefined, { code: ErrorCode.BadRequest, message: WRONG_KIND[session.codec] });
      session.noteMalformed(now);
      return;
    }
    if (!decoded.ok) {
      this.fail(session, decoded.id, decoded.error);
      session.noteMalformed(now);
      return;
    }
    const frame = decoded.frame;
    this.metrics.messagesIn.inc({ type: frame.type });
    // Pongs and acks need no order and no broker (acks are written in batches).
    if (frame.type === 'pong') return;
    if (frame.type === 'ack') return this.gateway.ack(session, frame.channel, frame.offset);
    const id = 'id' in frame ? frame.id : undefined;
    const queued = session.enqueue(async () => {
      if (session.closed) return;
      try {
        await this.dispatch(session, frame, typeof data === 'string' ? Buffer.byteLength(data) : data.length);
      } catch (err) {
        this.sendError(session, id, toErrorBody(err));
      }
    }, kind);
    if (!queued) this.fail(session, id, { code: ErrorCode.RateLimited, message: 'too many requests in flight' });
  }

  /** `bytes`: the frame's size, what a publish counts against the write quotas. */
  private async dispatch(session: Session, frame: ClientFrame, bytes: number): Promise<void> {
    switch (frame.type) {
      case 'pong':
      case 'ack':
        // Handled on arrival (see `receive`).
        return;
      case 'ping':
        session.send({ type: 'pong', id: frame.id });
        return;
      case 'subscribe': {
        const { id, channel, since } = frame;
        if (since) this.quotas?.checkReplay(session, Date.now());
        const subscribe = (): Promise<void> => this.subscribeNow(session, channel, since, (result) => session.send({ type: 'reply', id, result }));
        const asking = this.asking(session, channel, subscribe);
        // Not awaited: a slow backend delays this subscribe only, not the frames after it.
        if (asking) return this.answerLater(session, id, asking);
        this.checkSubscribe(session, channel);
        await subscribe();
        return;
      }
      case 'unsubscribe': {
        const { id, channel } = frame;
        if (channel === personalChannel(session.user)) {
          throw new SwitchboardError(ErrorCode.BadRequest, 'the personal channel cannot be unsubscribed');
        }
        const unsubscribe = async () => {
          await this.gateway.unsubscribe(session, channel);
          session.send({ type: 'reply', id, result: {} });
        };
        // After a subscribe there that waits on the hook: the last change wins, as without the hook.
        const hook = this.hooks.subscribe;
        if (hook?.waiting(session, channel)) {
          return this.answerLater(session, id, hook.inTurn(session, channel, () => inQueue(session, unsubscribe, 'unsubscribe')));
        }
        await unsubscribe();
        return;
      }
      case 'publish':
      case 'send': {
        const channel = frame.type === 'send' ? personalChannel(frame.user) : frame.channel;
        this.checkPublish(session, channel);
        this.quotas?.write(session, channel, bytes, Date.now());
        const { id, data } = frame;
        const hook = this.hooks.publish?.asks(channel) ? this.hooks.publish : undefined;
        // Not awaited: the frames after it need not wait for the broker (see `publishInOrder`), nor
        // for the hook, which runs in the publish's turn so that a later publish there cannot overtake it.
        const publishing = session.publishInOrder(
          channel,
          hook
            ? async () => this.gateway.publish(channel, await hook.data(session.user, session.id, channel, data), { from: session.user })
            : () => this.gateway.publish(channel, data, { from: session.user }),
        );
        if (!publishing) throw new SwitchboardError(ErrorCode.RateLimited, 'too many requests in flight');
        publishing.then(
          (result) => session.send({ type: 'reply', id, result }),
          (err: unknown) => this.sendError(session, id, toErrorBody(err)),
        );
        return;
      }
      case 'rpc': {
        if (!this.rpc) throw new SwitchboardError(ErrorCode.NotFound, 'no rpc hook configured');
        const { id } = frame;
        // Not awaited: a slow backend delays this reply only, not the frames after it.
        const rpc = this.rpc;
        const calling = session.runAside(() => rpc.call(session.user, session.id, frame.method, frame.data));
        if (!calling) throw new SwitchboardError(ErrorCode.RateLimited, 'too many requests in flight');
        calling.then(
          (data) => session.send({ type: 'reply', id, result: { data } }),
          (err: unknown) => this.sendError(session, id, toErrorBody(err)),
        );
        return;
      }
      case 'refresh': {
        const identity = await this.verify(frame.token);
        if (identity.user !== session.user) {
          throw new SwitchboardError(ErrorCode.Forbidden, 'the new token names another user than the session');
        }
        // The new grants apply to later subscribes and publishes; subscriptions made under the old ones stay.
        session.grants = identity.channels;
        session.expires = identity.exp;
        session.send({ type: 'reply', id: frame.id, result: identity.exp !== undefined ? { expires: identity.exp } : {} });
        return;
      }
    }
  }

  /** A `refresh` token's identity; a token the verifier refuses is `unauthorized` and leaves the session as it was. */
  private async verify(token: string): Promise<Identity> {
    try {
      return await this.verifier.verify(token);
    } catch (err) {
      throw new SwitchboardError(ErrorCode.Unauthorized, err instanceof TokenError ? err.message : 'invalid token');
    }
  }

  /**
   * Subscribe `session` to `channel` as a `subscribe` frame would (the same
   * checks, and the subscribe hook where the namespace asks it), for a
   * session whose channels come with its request (`/sse`): called outside
   * the frame queue. `respond` gets the result when it is due; settles once
   * the subscription is made, or rejects with why it was refused.
   */
  subscribe(session: Session, channel: string, since: StreamPosition | undefined, respond: (result: SubscribeResult) => void): Promise<void> {
    const subscribe = (): Promise<void> => this.subscribeNow(session, channel, since, respond);
    const asking = this.asking(session, channel, subscribe);
    if (asking) return asking;
    return inQueue(
      session,
      async () => {
        this.checkSubscribe(session, channel);
        await subscribe();
      },
      'subscribe',
    );
  }

  /** Subscribe through the gateway, then charge the connection's replay budget with the history it replayed. */
  private async subscribeNow(session: Session, channel: string, since: StreamPosition | undefined, respond: (result: SubscribeResult) => void): Promise<void> {
    const replayed = await this.gateway.subscribe(session, channel, since, respond);
    this.quotas?.replayed(session, replayed, Date.now());
  }

  /** The subscribe made through the hook, in its turn, when `channel`'s namespace asks it; undefined when it does not. */
  private asking(session: Session, channel: string, subscribe: () => Promise<void>): Promise<void> | undefined {
    const hook = this.hooks.subscribe;
    if (!hook?.asks(channel)) return undefined;
    return hook.inTurn(session, channel, () => this.subscribeAsking(session, hook, channel, subscribe));
  }

  /**
   * A subscribe to a channel whose namespace asks the hook, in its turn
   * (see `SubscribeHook.inTurn`): the node's checks, then the hook beside
   * the frame queue, then the subscription made in the queue like any other.
   */
  private async subscribeAsking(session: Session, hook: SubscribeHook, channel: string, subscribe: () => Promise<void>): Promise<void> {
    this.checkSubscribe(session, channel);
    // Counted against the limit from the checks until the subscription itself counts.
    const release = hook.reserve(session);
    try {
      const asking = session.runAside(() => hook.allow(session.user, session.id, channel));
      if (!asking) throw new SwitchboardError(ErrorCode.RateLimited, 'too many requests in flight');
      await asking;
      await inQueue(session, () => (release(), subscribe()), 'subscribe');
    } finally {
      release();
    }
  }

  /** The reply to frame `id` when `work` settles (its own reply when it succeeds, an error reply when it fails). */
  private answerLater(session: Session, id: number, work: Promise<void>): void {
    work.catch((err: unknown) => this.sendError(session, id, toErrorBody(err)));
  }

  private checkSubscribe(session: Session, channel: string): void {
    if (session.channels.has(channel)) throw new SwitchboardError(ErrorCode.BadRequest, `already subscribed to ${channel}`);
    if (personalChannelUser(channel) !== undefined) {
      throw new SwitchboardError(ErrorCode.Forbidden, 'personal channels of other users cannot be subscribed');
    }
    if (session.subscriptionCount + (this.hooks.subscribe?.pending(session) ?? 0) >= this.maxSubscriptions) {
      throw new SwitchboardError(ErrorCode.TooLarge, `subscription limit reached (${this.maxSubscriptions} per connection)`);
    }
    this.quotas?.checkNodeSubscriptions(this.gateway.subscriptionCount);
    this.checkPrivate(session, channel);
  }

  private checkPublish(session: Session, channel: string): void {
    const policy = this.gateway.namespaces.of(channel);
    if (!policy.publish) {
      const what = policy.namespace === PERSONAL_NAMESPACE ? 'send to users' : `publish to namespace "${policy.namespace}"`;
      throw new SwitchboardError(ErrorCode.Forbidden, `clients may not ${what} (the namespace's "publish" option allows it)`);
    }
    this.checkPrivate(session, channel);
  }

  private checkPrivate(session: Session, channel: string): void {
    if (!this.gateway.namespaces.of(channel).private) return;
    if (!session.grants.some((p) => matchesPattern(p, channel))) {
      throw new SwitchboardError(ErrorCode.Forbidden, `channel ${channel} needs a token that grants it`);
    }
  }

  /** Send an error in its turn: after the replies to earlier frames (and after `welcome`). */
  private fail(session: Session, id: number | undefined, error: ErrorBody): void {
    const write = async () => this.sendError(session, id, error);
    // A full queue is itself the error being reported: say it at once.
    if (!session.enqueue(write)) void write();
  }

  /** Send an error now: a reply to `id`, or an `error` frame when the frame had no usable id. */
  private sendError(session: Session, id: number | undefined, error: ErrorBody): void {
    this.metrics.errors.inc({ code: error.code });
    session.send(id === undefined ? { type: 'error', error } : { type: 'reply', id, error });
  }
}
