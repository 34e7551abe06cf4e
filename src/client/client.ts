/**
 * `SwitchboardClient`: one logical connection to a Switchboard cluster that
 * survives reconnects. Its lifecycle is a state machine —
 * `disconnected` → `connecting` → `connected` (on `welcome`) → back to
 * `connecting` on a drop — with one `setState` and one `teardown` through
 * which every disconnection passes.
 */
import {
  CloseCode,
  ErrorCode,
  isTerminalClose,
  isValidChannel,
  type ClientFrame,
  type DisconnectFrame,
  type Publication,
  type PublishResult,
  type RefreshResult,
  type RpcResult,
  type StreamPosition,
  type SubscribeResult,
  type WelcomeFrame,
} from '../protocol/index.js';
import { codecOfSubprotocol, encodeClientFrameBinary } from '../protocol/msgpack.js';
import { AckBatcher } from './ack.js';
import { backoffDelay } from '../shared/backoff.js';
import { publishBody, rpcBody, sendBody } from './calls.js';
import { applyRecovery } from './cursor.js';
import { decodeServerFrame } from './decode.js';
import { openSocket, resolveBase } from './dial.js';
import { TokenRefresher } from './refresh.js';
import { Emitter } from './emitter.js';
import { ClientError, LocalErrorCode, serverCloseError } from './errors.js';
import type { ClientEvents, ClientState, ConnectedEvent, DisconnectedEvent } from './events.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { PersonalChannel } from './personal.js';
import { ReconnectSchedule } from './reconnect.js';
import { Requests, type RequestBody, type RequestFrame } from './requests.js';
import { Subscription, type SubscriptionHost } from './subscription.js';
import { buildConnectUrl, closableCode, redirectProblem, WS_CLOSING, WS_OPEN, type WebSocketLike } from './transport.js';
import { Watchdog } from './watchdog.js';

/** Close code and reason of `client.disconnect()`. */
const CLIENT_DISCONNECT = { code: 1000, reason: 'client disconnect' } as const;
/** WebSocket close reasons are capped at 123 bytes. */
const MAX_REASON_CHARS = 100;

export class SwitchboardClient extends Emitter<ClientEvents> {
  private readonly opts: ResolvedOptions;
  private currentState: ClientState = 'disconnected';
  private ws: WebSocketLike | null = null;
  /** The URL `ws` was opened with: a redirect from `wss:` may not lead to `ws:`. */
  private wsUrl = '';
  /** Bumped by every attempt and every teardown; an async step of an older attempt sees the change and gives up. */
  private connId = 0;
  /** When and where the next attempt goes: backoff, redirects. */
  private readonly retry: ReconnectSchedule;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly watchdog = new Watchdog(() => this.teardown(CloseCode.HeartbeatTimeout, 'heartbeat timeout', true));
  private readonly requests: Requests;
  /** Refreshes the session's token before `welcome.expires` (with `getToken` only). */
  private readonly refresher: TokenRefresher;
  private readonly acks: AckBatcher;
  private readonly subs = new Map<string, Subscription>();
  private readonly host: SubscriptionHost;
  private readonly personal: PersonalChannel;
  private info: ConnectedEvent | undefined;

  /** Throws `TypeError` for a missing `url`, no WebSocket implementation, or a bad number. */
  constructor(options: ClientOptions) {
    super();
    this.opts = resolveOptions(options);
    buildConnectUrl(this.opts.url, {}); // throws now for a malformed url
    this.retry = new ReconnectSchedule(this.opts, () => void this.open());
    this.personal = new PersonalChannel(this.opts.maxBufferedMessages);
    this.requests = new Requests({ timeout: this.opts.requestTimeout, maxQueued: this.opts.maxQueuedRequests });
    this.acks = new AckBatcher(this.opts.ackInterval, (frame) => this.sendFrame(frame));
    this.refresher = new TokenRefresher(this.opts, {
      send: (token) => this.request<RefreshResult>({ type: 'refresh', token }, false),
      onError: (err) => this.emitError(new ClientError(LocalErrorCode.Token, 'token refresh failed', err)),
    });
    this.host = {
      isConnected: () => this.currentState === 'connected',
      register: (sub) => this.register(sub),
      unregister: (sub) => {
        if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
      },
      requestSubscribe: (channel, since) =>
        this.request<SubscribeResult>(since ? { type: 'subscribe', channel, since } : { type: 'subscribe', channel }, false),
      requestUnsubscribe: (channel) => this.request({ type: 'unsubscribe', channel }, false),
      publish: (channel, data) => this.publish(channel, data),
      delivered: (pub) => this.delivered(pub),
      reset: (event) => this.emit('reset', event),
      retryDelay: (attempt) => backoffDelay(attempt, this.opts.minReconnectDelay, this.opts.maxReconnectDelay, this.opts.random),
      maxBuffered: this.opts.maxBufferedMessages,
    };
  }

  /** `disconnected`, `connecting` (including waiting to retry) or `connected`. */
  get state(): ClientState {
    return this.currentState;
  }

  /** The current session (from `welcome`) while connected, else undefined. */
  get connection(): ConnectedEvent | undefined {
    return this.info;
  }

  /** The last position delivered on the personal channel: what a reconnect recovers from. */
  get personalPosition(): StreamPosition | undefined {
    return this.personal.cursor.position;
  }

  /** Start connecting (at once; retries back off). No-op unless `disconnected`. */
  connect(): void {
    if (this.currentState !== 'disconnected') return;
    this.retry.reset();
    this.setState('connecting');
    void this.open();
  }

  /** Close the connection and stop reconnecting. Subscriptions are kept for the next `connect()`. */
  disconnect(): void {
    // The socket is still open: acknowledge what the app already got, or the
    // server replays it to this device's next fresh client.
    this.acks.flush();
    this.teardown(CLIENT_DISCONNECT.code, CLIENT_DISCONNECT.reason, false);
  }

  /**
   * Subscribe to `channel`, now or as soon as connected, and keep the
   * subscription across reconnects. Returns the existing `Subscription` if
   * there is one. Throws `ClientError('bad_request')` for an invalid name.
   */
  subscribe(channel: string): Subscription {
    if (!isValidChannel(channel)) {
      throw new ClientError(ErrorCode.BadRequest, `invalid channel name ${JSON.stringify(channel)}`);
    }
    const sub = this.subs.get(channel) ?? new Subscription(this.host, channel);
    sub.subscribe();
    return sub;
  }

  /** The subscription to `channel`, if any. */
  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /** All current subscriptions. */
  subscriptions(): Subscription[] {
    return [...this.subs.values()];
  }

  /**
   * Publish `data` (any JSON value) to `channel`. Resolves with the message's
   * `{offset, epoch}` (absent on channels without history). While
   * connecting, the request waits (up to `maxQueuedRequests` of them) and is
   * sent once connected; `requestTimeout` counts from now. Rejects with a
   * `ClientError`: the server's code, `timeout`, `disconnected` (the
   * connection dropped after sending, or the client is `disconnected`) or
   * `queue_full`. Throws `bad_request` at once for an invalid channel or
   * `undefined` data.
   */
  publish(channel: string, data: unknown): Promise<PublishResult> {
    return this.request<PublishResult | undefined>(publishBody(channel, data)).then((r) => r ?? {});
  }

  /** Send `data` to every session of `user` (publish to `user:<user>`); like `publish`. */
  send(user: string, data: unknown): Promise<PublishResult> {
    return this.request<PublishResult | undefined>(sendBody(user, data)).then((r) => r ?? {});
  }

  /** Call `method` of the backend's rpc hook with `data`; resolves with its answer. Queued and rejected like `publish` (`not_found`: no rpc hook). */
  rpc(method: string, data: unknown): Promise<unknown> {
    return this.request<RpcResult>(rpcBody(method, data)).then((r) => r.data);
  }

  /** Round trip to the server; resolves with the time it took in ms. Queued and rejected like `publish`. */
  async ping(): Promise<number> {
    const started = Date.now();
    await this.request({ type: 'ping' });
    return Date.now() - started;
  }

  // ---- connection lifecycle ------------------------------------------------

  private async open(): Promise<void> {
    const id = ++this.connId;
    const redirect = this.retry.takeRedirect();
    // Started before getToken: both may be network round trips.
    const base = redirect ?? this.resolveBase(id);
    let token = this.opts.token;
    if (this.opts.getToken) {
      try {
        token = await this.opts.getToken();
      } catch (err) {
        if (id !== this.connId) return;
        this.emitError(new ClientError(LocalErrorCode.Token, 'getToken failed', err));
        this.scheduleReconnect();
        return;
      }
      if (id !== this.connId) return;
    }
    const baseUrl = await base;
    if (id !== this.connId) return;
    const since = this.personal.attempt();
    const url = buildConnectUrl(baseUrl, {
      params: this.opts.params,
      ...(token !== undefined && this.opts.tokenIn === 'query' ? { token } : {}),
      ...(since ? { since } : {}),
    });
    let ws: WebSocketLike;
    try {
      ws = openSocket(this.opts, url, token);
    } catch (err) {
      this.emitError(new ClientError(LocalErrorCode.Transport, 'could not open a WebSocket', err));
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.wsUrl = url;
    // Each handler checks it still belongs to the current socket: events of a replaced one are late and ignored.
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.onFrame(ev.data, ws);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.closedBy(ev.code, ev.reason, !isTerminalClose(ev.code));
    };
    ws.onerror = (ev) => {
      // Always keep a handler: the `ws` package throws on an 'error' nobody listens to.
      if (this.ws === ws) {
        const message = (ev as { message?: unknown } | null)?.message;
        this.emitError(new ClientError(LocalErrorCode.Transport, typeof message === 'string' ? message : 'WebSocket error'));
      }
    };
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws) this.teardown(CloseCode.HeartbeatTimeout, 'connect timeout', true);
    }, this.opts.connectTimeout);
  }

  /** The base URL of attempt `id`; a failed `resolveUrl` is reported unless the attempt was abandoned. */
  private async resolveBase(id: number): Promise<string> {
    const { url, error } = await resolveBase(this.opts);
    if (error && id === this.connId) this.emitError(error);
    return url;
  }

  private scheduleReconnect(): void {
    if (this.currentState === 'disconnected') return;
    this.retry.schedule();
  }

  /**
   * The one way down. Closes the socket, stops timers, rejects what was sent
   * on it, and either schedules a reconnect (`reconnect`; at once to
   * `redirect` when given) or settles in `disconnected`.
   */
  private teardown(code: number, reason: string, reconnect: boolean, redirect?: string): void {
    const ws = this.ws;
    this.ws = null;
    const id = ++this.connId;
    if (ws && ws.readyState < WS_CLOSING) {
      try {
        ws.close(closableCode(code), reason.slice(0, MAX_REASON_CHARS));
      } catch {
        // Already failing; its close event is ignored since `this.ws` moved on.
      }
    }
    clearTimeout(this.connectTimer);
    this.watchdog.stop();
    this.refresher.stop();
    this.acks.clear();
    this.info = undefined;
    this.personal.drop();

    const wasActive = this.currentState !== 'disconnected';
    const willReconnect = reconnect && wasActive;
    // Any other way down forgets a redirect still waiting for its attempt.
    this.retry.cancel(willReconnect ? redirect : undefined);
    this.setState(willReconnect ? 'connecting' : 'disconnected');
    for (const sub of [...this.subs.values()]) sub._disconnected();
    this.requests.rejectAll(`connection closed (${code} ${reason})`, !willReconnect);
    if (wasActive) {
      const event: DisconnectedEvent = { code, reason, reconnect: willReconnect };
      if (this.retry.redirect !== undefined) event.url = this.retry.redirect;
      this.emit('disconnected', event);
    }
    // Unless a listener already called disconnect() or connect() (both move connId on).
    if (willReconnect && id === this.connId) this.scheduleReconnect();
  }

  private setState(state: ClientState): void {
    if (state === this.currentState) return;
    const previous = this.currentState;
    this.currentState = state;
    this.emit('state', { previous, state });
  }

  // ---- incoming frames -----------------------------------------------------

  /** `ws` is the socket it came on: its negotiated subprotocol says how the frame is encoded. */
  private onFrame(data: unknown, ws: WebSocketLike): void {
    this.watchdog.touch();
    const decoded = decodeServerFrame(data, codecOfSubprotocol(ws.protocol));
    if (!decoded.ok) {
      this.emitError(new ClientError(LocalErrorCode.BadFrame, decoded.reason));
      return;
    }
    const frame = decoded.frame;
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'message': {
        const { type: _type, ...pub } = frame;
        return this.onPublication(pub);
      }
      case 'reply':
        this.requests.settle(frame.id, 'error' in frame ? { error: frame.error } : { result: frame.result });
        return;
      case 'pong':
        this.requests.settle(frame.id, { result: undefined });
        return;
      case 'ping':
        this.sendFrame({ type: 'pong' });
        return;
      case 'disconnect':
        return this.onDisconnect(frame);
      case 'error':
        return this.emitError(new ClientError(frame.error.code, frame.error.message));
      case 'join':
      case 'leave':
        return this.subs.get(frame.channel)?._member(frame);
    }
  }

  /**
   * The server closes the session. With 4102 and a `ws:`/`wss:` `url` the
   * user's owner node is elsewhere: reconnect there at once, up to
   * `MAX_REDIRECTS` times in a row (never from `wss:` to `ws:`); everything
   * else about the reconnect (token, params, recovery positions) is as usual.
   */
  private onDisconnect(frame: DisconnectFrame): void {
    const reconnect = frame.reconnect && !isTerminalClose(frame.code);
    let redirect: string | undefined;
    if (reconnect && frame.code === CloseCode.Moved && frame.url !== undefined) {
      const problem = redirectProblem(this.wsUrl, frame.url);
      if (problem !== undefined) this.emitError(new ClientError(LocalErrorCode.BadFrame, problem));
      else if (this.retry.followRedirect()) redirect = frame.url;
    }
    this.closedBy(frame.code, frame.reason, reconnect, redirect);
  }

  /** The server closed the connection (its `disconnect` frame, or the socket's close): a fault is an `error` too. */
  private closedBy(code: number, reason: string, reconnect: boolean, redirect?: string): void {
    const error = serverCloseError(code, reason, reconnect);
    if (error) this.emitError(error);
    this.teardown(code, reason, reconnect, redirect);
  }

  private onWelcome(w: WelcomeFrame): void {
    if (this.currentState !== 'connecting' || this.info) return; // a repeated welcome changes nothing
    clearTimeout(this.connectTimer);
    this.retry.reset();
    const since = this.personal.welcome(w.channel);
    const buffered = this.personal.takeHeld();
    if (w.ping > 0) this.watchdog.start(w.ping * 1000 + this.opts.heartbeatGrace);
    const ws = this.ws;

    applyRecovery(this.personal.cursor, since, w, buffered, {
      reset: () => this.emit('reset', { channel: w.channel, ...this.personal.cursor.position }),
      ready: ({ wasRecovering, recovered }) => {
        const codec = codecOfSubprotocol(ws?.protocol ?? '');
        this.info = { session: w.session, node: w.node, user: w.user, channel: w.channel, ping: w.ping, wasRecovering, recovered, codec };
        this.setState('connected');
        this.emit('connected', this.info);
      },
      deliver: (pub) => {
        if (this.ws === ws) this.emitPersonal(pub);
      },
    });
    if (this.ws !== ws || !this.info) return; // a listener disconnected
    this.refresher.start(w.expires);
    for (const sub of [...this.subs.values()]) sub._connected();
    this.requests.flush((frame) => this.sendFrame(frame));
  }

  private onPublication(pub: Publication): void {
    if (this.currentState !== 'connected') {
      this.personal.hold(pub);
      return;
    }
    if (pub.channel === this.personal.channel) this.deliverPersonal(pub);
    else this.subs.get(pub.channel)?._message(pub);
  }

  /** A live personal message: de-duplicate, then emit. */
  private deliverPersonal(pub: Publication): void {
    if (this.personal.cursor.accept(pub)) this.emitPersonal(pub);
  }

  private emitPersonal(pub: Publication): void {
    this.emit('personal', pub);
    this.delivered(pub);
  }

  /** Every message the app sees passes here once: the client-wide event and the ack. */
  private delivered(pub: Publication): void {
    this.emit('message', pub);
    if (this.opts.autoAck && pub.offset !== undefined) this.acks.note(pub.channel, pub.offset);
  }

  // ---- outgoing ------------------------------------------------------------

  private request<R>(body: RequestBody, queueable = true): Promise<R> {
    if (this.currentState === 'disconnected') {
      return Promise.reject(new ClientError(LocalErrorCode.Disconnected, 'not connected: call connect() first'));
    }
    const send = this.currentState === 'connected' ? (frame: RequestFrame) => this.sendFrame(frame) : undefined;
    return this.requests.start<R>(body, send, queueable);
  }

  /** Write a frame if the socket is open; false otherwise. */
  private sendFrame(frame: ClientFrame): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return false;
    try {
      ws.send(codecOfSubprotocol(ws.protocol) === 'msgpack' ? encodeClientFrameBinary(frame) : JSON.stringify(frame));
      return true;
    } catch {
      // The socket is going down; its close event drives the reconnect.
      return false;
    }
  }

  private register(sub: Subscription): void {
    const existing = this.subs.get(sub.channel);
    if (existing && existing !== sub) {
      throw new ClientError(ErrorCode.BadRequest, `another Subscription to ${sub.channel} exists; use client.getSubscription()`);
    }
    this.subs.set(sub.channel, sub);
  }

  private emitError(error: ClientError, channel?: string): void {
    this.emit('error', channel === undefined ? { error } : { error, channel });
  }

  protected override listenerFailed(err: unknown, event: keyof ClientEvents): void {
    if (event === 'error') return super.listenerFailed(err, event);
    this.emitError(new ClientError(LocalErrorCode.Listener, `a "${String(event)}" listener threw`, err));
  }
}
