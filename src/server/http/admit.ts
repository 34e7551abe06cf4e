/**
 * The way into a session, shared by every endpoint that opens one (`/ws`,
 * `/sse`): the node-wide and per-IP limits, admission, and who the client
 * is. A refusal is a `Refusal`; each endpoint answers it in its own form.
 *
 * Order of the checks: the cheap refusals that do not depend on this client
 * (draining, not ready, full) first; then the per-IP limit, so that one
 * address hammering the node is refused before it spends the node-wide
 * admission budget; then admission (handshakes per second and in flight),
 * which covers the expensive part: token check, and the session's broker
 * reads until its `welcome`.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { CloseCode, ErrorCode, isValidUserId, SwitchboardError } from '../../protocol/index.js';
import { TokenError, type Identity, type TokenVerifier } from '../auth/token.js';
import { Admission } from '../core/admission.js';
import { ConnectionCaps } from '../core/caps.js';
import type { FrameHandler } from '../core/frame-handler.js';
import type { Gateway, OpenSession } from '../core/gateway.js';
import { IpConnectionLimiter } from '../core/rate.js';
import { connectRequest, type ConnectHook } from '../hooks/connect.js';
import type { RefreshHook } from '../hooks/refresh.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { clientIp } from './client-ip.js';
import { awaitConnectFrame, type FirstFrameOutcome } from './first-frame.js';

export interface DoorContext {
  options: NodeOptions;
  gateway: Gateway;
  verifier: TokenVerifier;
  /** Names the client of a request without a valid token (cookies); none: such a request is refused. */
  connectHook?: ConnectHook;
  metrics: Metrics;
  log: Logger;
  /** True once the node drains: new connections are refused with 503. */
  draining: () => boolean;
  ready: () => boolean;
}

/** What an endpoint needs, beside its `Door`, to open sessions. */
export interface EndpointContext {
  options: NodeOptions;
  gateway: Gateway;
  frames: FrameHandler;
  /** Extends the sessions the connect hook accepted with an `expireAt`; none: they close then (4105). */
  refreshHook?: RefreshHook;
  log: Logger;
}

/**
 * Seconds a refused client is told to wait (`Retry-After`) for a refusal
 * that passes: an admission or per-IP budget refills within a second; a node
 * that is full or not ready needs longer. (Browsers cannot read it; the SDK
 * backs off with jitter anyway. It is for load balancers and other clients.)
 */
const RETRY_AFTER = { budget: 1, unavailable: 5 } as const;

/**
 * Why a connection was refused, the `reason` label of
 * `switchboard_connections_rejected_total`.
 */
export type RefusalReason =
  | 'not_found'
  | 'origin'
  | 'draining'
  | 'not_ready'
  | 'max_connections'
  | 'ip_rate'
  | 'connections_per_ip'
  | 'connections_per_user'
  | 'handshake_rate'
  | 'handshakes_in_flight'
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'connect_hook'
  | 'internal';

export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: (typeof ErrorCode)[keyof typeof ErrorCode],
    readonly reason: RefusalReason,
    message: string,
    /** Seconds for a `Retry-After` header, if the client may retry here. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** `identify`'s answer for a WebSocket upgrade whose token is to come in its first frame (first-frame.ts). */
export const IN_FIRST_FRAME = Symbol('in first frame');

/** A client let in: who it is, what its endpoint parsed from the request, and the call that ends its handshake. */
export interface Entry<T, I = Identity> {
  identity: I;
  request: T;
  /** Call when the handshake is over (the session's first frame, or a failure); later calls do nothing. */
  done: () => void;
}

export class Door {
  private readonly ipLimiter: IpConnectionLimiter;
  private readonly admission: Admission;
  /** Clients admitted but not yet sessions (token being checked). */
  private pending = 0;
  /** Whether the log already said that a proxy's address is being counted as the client's. */
  private warnedProxy = false;
  /** Open connections per IP and per user. */
  private readonly caps: ConnectionCaps;

  constructor(private readonly ctx: DoorContext) {
    this.ipLimiter = new IpConnectionLimiter(ctx.options.limits.maxConnectionsPerIpPerSecond);
    this.caps = new ConnectionCaps(ctx.options.limits);
    const { maxHandshakesPerSecond, maxHandshakesInFlight } = ctx.options.limits;
    this.admission = new Admission({ perSecond: maxHandshakesPerSecond, inFlight: maxHandshakesInFlight }, Date.now());
    ctx.metrics.countHandshakes(() => this.admission.inFlight);
  }

  /** Handshakes admitted whose `welcome` is not sent yet. */
  get handshakesInFlight(): number {
    return this.admission.inFlight;
  }

  /**
   * Let a client in, or throw a `Refusal`: the limits, then `parse` (the
   * endpoint's own reading of the request, refused before it spends
   * admission), then admission and the client's identity. `done` of the
   * entry must be called when the handshake ends. With `firstFrame` (a
   * WebSocket), a client that names nobody on a node that takes tokens is
   * let in as `IN_FIRST_FRAME`: its token comes in its first frame.
   */
  async enter<T>(req: IncomingMessage, url: URL, parse: (url: URL) => T): Promise<Entry<T>>;
  async enter<T>(req: IncomingMessage, url: URL, parse: (url: URL) => T, firstFrame: true): Promise<Entry<T, Identity | typeof IN_FIRST_FRAME>>;
  async enter<T>(req: IncomingMessage, url: URL, parse: (url: URL) => T, firstFrame = false): Promise<Entry<T, Identity | typeof IN_FIRST_FRAME>> {
    if (this.ctx.draining()) {
      // No Retry-After: this node is going away, the client should go elsewhere.
      throw new Refusal(503, ErrorCode.Unavailable, 'draining', 'node is draining: connect to another node');
    }
    if (!this.ctx.ready()) {
      throw new Refusal(503, ErrorCode.Unavailable, 'not_ready', 'node is not ready: broker unreachable', RETRY_AFTER.unavailable);
    }
    if (this.ctx.gateway.sessions.size + this.pending >= this.ctx.options.limits.maxConnections) {
      throw new Refusal(
        503,
        ErrorCode.Unavailable,
        'max_connections',
        'node is at its connection limit: connect to another node',
        RETRY_AFTER.unavailable,
      );
    }
    const now = Date.now();
    if (!this.ipLimiter.allow(this.clientIp(req), now)) {
      throw new Refusal(
        429,
        ErrorCode.RateLimited,
        'ip_rate',
        'too many new connections from this address: retry later',
        RETRY_AFTER.budget,
      );
    }
    const request = parse(url);
    const admitted = this.admission.enter(now);
    if (!admitted.ok) {
      const what = admitted.reason === 'handshake_rate' ? 'too many new connections' : 'too many connections being opened';
      throw new Refusal(503, ErrorCode.Unavailable, admitted.reason, `node busy (${what}): retry later`, RETRY_AFTER.budget);
    }
    // The handshake ends with the session's first frame (welcome, or the
    // disconnect that replaces it) or with the socket, whichever comes first.
    // A connection that ends before its session is bound also gives back its place under the caps (see `hold`).
    const socket = req.socket;
    const closed = (): void => {
      admitted.done();
      this.caps.leave(socket);
    };
    socket.once('close', closed);
    const done = (): void => {
      socket.off('close', closed);
      admitted.done();
      if (socket.destroyed) this.caps.leave(socket);
    };
    this.pending++;
    try {
      const identity = await this.identify(req, url, firstFrame);
      if (identity !== IN_FIRST_FRAME) this.hold(req, identity.user);
      return { identity, request, done };
    } catch (err) {
      done();
      throw err;
    } finally {
      this.pending--;
    }
  }

  /** `err` as the refusal to answer (an unexpected one is a 500, logged), counted in the rejection metric. */
  refusal(err: unknown, what: string): Refusal {
    const refusal = err instanceof Refusal ? err : new Refusal(500, ErrorCode.Internal, 'internal', 'internal error');
    if (refusal.status === 500) this.ctx.log.error({ err }, `${what} failed`);
    this.ctx.metrics.rejected.inc({ reason: refusal.reason });
    return refusal;
  }

  /**
   * Who the client is: a valid token's identity; else the connect hook's
   * answer, when there is one (an invalid token too goes to the hook, which
   * gets the `authorization` header and the query: a backend may take its
   * own opaque tokens there); else `?user=` under `--insecure`; else, with
   * `firstFrame` on a node that takes tokens, the token in the first frame.
   */
  private async identify(req: IncomingMessage, url: URL, firstFrame: boolean): Promise<Identity | typeof IN_FIRST_FRAME> {
    const header = req.headers.authorization;
    const token = url.searchParams.get('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined);
    let refused: string | undefined;
    if (token) {
      try {
        return await this.ctx.verifier.verify(token);
      } catch (err) {
        refused = err instanceof TokenError ? err.message : 'invalid token';
      }
    }
    if (this.ctx.connectHook) return this.askConnectHook(this.ctx.connectHook, req, url);
    if (refused !== undefined) throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', refused);
    if (this.ctx.options.insecure) {
      const user = url.searchParams.get('user');
      if (!isValidUserId(user)) {
        throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', 'insecure mode: pass ?user=<id> (1-250 of A-Za-z0-9_-.:@=,)');
      }
      return { user, channels: [] };
    }
    if (url.searchParams.has('user')) {
      throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', '?user= is accepted under --insecure only: pass a token');
    }
    if (!this.ctx.verifier.configured) throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', 'this node accepts no tokens');
    if (firstFrame) return IN_FIRST_FRAME;
    throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', 'missing token: pass ?token=<JWT> or "Authorization: Bearer <JWT>"');
  }

  /**
   * What a WebSocket let in as `IN_FIRST_FRAME` names in its first frame
   * (first-frame.ts), counted meanwhile as a connection being opened;
   * undefined when it was refused (closed with 4001, counted) or went away,
   * or when the node began draining meanwhile (closed with 4100, as a new
   * upgrade would be refused).
   */
  async firstFrame(ws: WebSocket, req: IncomingMessage): Promise<FirstFrameOutcome | undefined> {
    this.pending++;
    let outcome: FirstFrameOutcome | undefined;
    try {
      outcome = await awaitConnectFrame(ws, (token) => this.ctx.verifier.verify(token), this.ctx.options.firstFrameTimeout);
    } finally {
      this.pending--;
    }
    if (!outcome || ws.readyState !== ws.OPEN) {
      this.ctx.metrics.rejected.inc({ reason: 'unauthorized' });
      return undefined;
    }
    if (this.ctx.draining()) {
      ws.close(CloseCode.Draining, 'node is draining: connect to another node');
      return undefined;
    }
    try {
      this.hold(req, outcome.identity.user);
    } catch (err) {
      // Past a cap once the user is known: as the 429 of an upgrade, a close to retry later.
      ws.close(CloseCode.RateLimited, err instanceof Error ? err.message.slice(0, 120) : 'rate limited');
      return undefined;
    }
    return outcome;
  }

  /** The connection on `socket` ended: its place under the connection caps is free (once, however often called). */
  leave(socket: object): void {
    this.caps.leave(socket);
  }

  /**
   * Take the place of a connection of `user` from the request's address
   * (`--max-connections-per-ip`, `--max-connections-per-user`); a 429
   * `Refusal` past either cap. The place is given back by `leave`, which
   * the transport calls when the connection ends, or by the handshake if
   * the socket closes before.
   */
  private hold(req: IncomingMessage, user: string): void {
    const over = this.caps.enter(req.socket, this.clientIp(req), user);
    if (over !== undefined) {
      this.ctx.metrics.quotaExceeded.inc({ quota: over });
      const whose = over === 'connections_per_ip' ? 'from this address' : 'for this user';
      throw new Refusal(429, ErrorCode.RateLimited, over, `too many connections open ${whose}: close one first`, RETRY_AFTER.budget);
    }
  }

  /** The connect hook's identity; its 401 or 403 refuse with that status, any failure of the hook with 503. */
  private async askConnectHook(hook: ConnectHook, req: IncomingMessage, url: URL): Promise<Identity> {
    try {
      return await hook.identify(connectRequest(req, url, this.clientIp(req)));
    } catch (err) {
      if (!(err instanceof SwitchboardError)) throw err;
      if (err.code === ErrorCode.Unauthorized) throw new Refusal(401, err.code, 'unauthorized', err.message);
      if (err.code === ErrorCode.Forbidden) throw new Refusal(403, err.code, 'forbidden', err.message);
      throw new Refusal(503, ErrorCode.Unavailable, 'connect_hook', err.message, RETRY_AFTER.budget);
    }
  }

  private clientIp(req: IncomingMessage): string {
    const forwarded = req.headers['x-forwarded-for'];
    const { trustProxy, limits } = this.ctx.options;
    if (!trustProxy && forwarded !== undefined && limits.maxConnectionsPerIpPerSecond > 0 && !this.warnedProxy) {
      this.warnedProxy = true;
      this.ctx.log.warn(
        { peer: req.socket.remoteAddress },
        'upgrades arrive through a proxy (X-Forwarded-For) but --trust-proxy is off: the per-IP limit counts the proxy, ' +
          'so all its clients share one budget of --max-connections-per-ip-per-second; set --trust-proxy behind a proxy you control',
      );
    }
    return clientIp(req.socket.remoteAddress, forwarded, trustProxy);
  }
}

/** The session fields of an identity, as `Gateway.open` takes them. */
export function sessionIdentity(identity: Identity): Pick<OpenSession, 'user' | 'grants' | 'expires' | 'meta'> {
  return {
    user: identity.user,
    grants: identity.channels,
    ...(identity.exp !== undefined ? { expires: identity.exp } : {}),
    ...(identity.meta !== undefined ? { meta: identity.meta } : {}),
  };
}

/** The request target as a URL, or null when it is not one (`//[/x`, `http://a:99999/ws`). */
export function requestUrl(target: string | undefined): URL | null {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

/** `?device=`: which of the user's devices connects, for its own acknowledged position ('' when absent: the user's). */
export function parseDevice(url: URL): string {
  const device = url.searchParams.get('device');
  if (device === null) return '';
  if (!/^[A-Za-z0-9_\-.:@=,]{1,64}$/.test(device)) {
    throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', '?device= must be 1-64 of A-Za-z0-9_-.:@=,');
  }
  return device;
}
