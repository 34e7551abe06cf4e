/**
 * The WebSocket endpoint `GET /ws`: limits and the token are checked before
 * the upgrade (HTTP 401/429/503), then the socket becomes a `Session`.
 *
 * Order of the checks: the cheap refusals that do not depend on this client
 * (draining, not ready, full) first; then the per-IP limit, so that one
 * address hammering the node is refused before it spends the node-wide
 * admission budget; then admission (handshakes per second and in flight),
 * which covers the expensive part: token check, and the session's broker
 * reads until its `welcome`.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import { ErrorCode, isValidUserId, SwitchboardError, type StreamPosition } from '../../protocol/index.js';
import { selectSubprotocol } from '../../protocol/msgpack.js';
import { TokenError, type Identity, type TokenVerifier } from '../auth/token.js';
import type { FrameHandler } from '../core/frame-handler.js';
import type { Gateway } from '../core/gateway.js';
import { connectRequest, type ConnectHook } from '../hooks/connect.js';
import type { RefreshHook } from '../hooks/refresh.js';
import type { Session } from '../core/session.js';
import { Admission } from '../core/admission.js';
import { ConnectionCaps } from '../core/caps.js';
import { IpConnectionLimiter } from '../core/rate.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { clientIp } from './client-ip.js';
import { refuseUpgrade } from './respond.js';
import { CorkBatch } from './ws-out.js';
import { SessionSocket, type SocketOwner, WsTransport } from './ws-transport.js';

/**
 * permessage-deflate when `--permessage-deflate` is on. Messages under 1 KiB
 * are sent as they are: compressing them costs more CPU than it saves bytes.
 * Memory per connection is bounded: no context takeover either way (zlib is
 * reset after every message), a 1 KiB server window and a small hash table,
 * so a connection's deflate state is about 36 KiB instead of some 256 KiB
 * (zlib needs 2^(window+2) + 2^(memLevel+9) bytes). A client that offers
 * only a server window below 2^10 (browsers do not) is refused by ws with 400.
 */
export const DEFLATE: PerMessageDeflateOptions = {
  threshold: 1024,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 10,
  zlibDeflateOptions: { memLevel: 6 },
};

export interface UpgradeContext {
  options: NodeOptions;
  gateway: Gateway;
  frames: FrameHandler;
  verifier: TokenVerifier;
  /** Names the client of an upgrade without a valid token (cookies); none: such an upgrade is refused. */
  connectHook?: ConnectHook;
  /** Extends the sessions the connect hook accepted with an `expireAt`; none: they close then (4105). */
  refreshHook?: RefreshHook;
  metrics: Metrics;
  log: Logger;
  /** True once the node drains: new connections are refused with 503. */
  draining: () => boolean;
  ready: () => boolean;
}

/**
 * Seconds a refused client is told to wait (`Retry-After`) for a refusal
 * that passes: an admission or per-IP budget refills within a second; a node
 * that is full or not ready needs longer. (Browsers cannot read it; the SDK
 * backs off with jitter anyway. It is for load balancers and other clients.)
 */
const RETRY_AFTER = { budget: 1, unavailable: 5 } as const;

/**
 * Why an upgrade was refused, the `reason` label of
 * `switchboard_connections_rejected_total`.
 */
type RefusalReason =
  | 'not_found'
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

class Refusal extends Error {
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

export class Upgrader implements SocketOwner {
  readonly wss: WebSocketServer;
  /** The sockets bound to a session and not closed yet (`SocketOwner`). */
  readonly sockets = new Set<SessionSocket>();
  private readonly ipLimiter: IpConnectionLimiter;
  private readonly admission: Admission;
  /** Open connections per IP and per user. */
  private readonly caps: ConnectionCaps;
  /** Upgrades accepted but not yet sessions (token being checked). */
  private pending = 0;
  /** Whether the log already said that a proxy's address is being counted as the client's. */
  private warnedProxy = false;
  /** Corks the sockets written by fan-out in one tick and flushes them together. */
  private readonly batch = new CorkBatch();

  constructor(private readonly ctx: UpgradeContext) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: ctx.options.limits.maxFrameBytes,
      perMessageDeflate: ctx.options.permessageDeflate ? DEFLATE : false,
      // The open sockets are tracked in `sockets`, through the listeners every connection shares.
      clientTracking: false,
      WebSocket: SessionSocket,
      handleProtocols: (protocols) => selectSubprotocol(protocols, ctx.options.msgpack),
    });
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

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    this.accept(req, socket, head).catch((err: unknown) => {
      const refusal =
        err instanceof Refusal ? err : new Refusal(500, ErrorCode.Internal, 'internal', 'internal error');
      if (refusal.status === 500) this.ctx.log.error({ err }, 'upgrade failed');
      this.ctx.metrics.rejected.inc({ reason: refusal.reason });
      if (socket.destroyed) return;
      const headers: Record<string, string> = refusal.retryAfter === undefined ? {} : { 'Retry-After': String(refusal.retryAfter) };
      refuseUpgrade(socket, refusal.status, { code: refusal.code, message: refusal.message }, headers);
    });
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = requestUrl(req.url);
    if (!url) throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'malformed request target');
    if (url.pathname !== '/ws') throw new Refusal(404, ErrorCode.NotFound, 'not_found', 'WebSocket endpoint is /ws');
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
    const since = parseSince(url);
    const device = parseDevice(url);
    const admitted = this.admission.enter(now);
    if (!admitted.ok) {
      const what = admitted.reason === 'handshake_rate' ? 'too many new connections' : 'too many connections being opened';
      throw new Refusal(503, ErrorCode.Unavailable, admitted.reason, `node busy (${what}): retry later`, RETRY_AFTER.budget);
    }
    // The handshake ends with the session's first frame (welcome, or the
    // disconnect that replaces it) or with the socket, whichever comes first;
    // the socket's close also covers an upgrade that `ws` aborts on its own.
    socket.once('close', admitted.done);
    this.pending++;
    let identity: Identity;
    try {
      identity = await this.identify(req, url);
    } catch (err) {
      admitted.done();
      throw err;
    } finally {
      this.pending--;
    }
    if (socket.destroyed) return admitted.done();
    // Held until the socket closes, whatever ends it.
    const leave = this.caps.enter(this.clientIp(req), identity.user);
    if (typeof leave === 'string') {
      admitted.done();
      this.ctx.metrics.quotaExceeded.inc({ quota: leave });
      throw new Refusal(429, ErrorCode.RateLimited, leave, `too many connections open ${leave === 'connections_per_ip' ? 'from this address' : 'for this user'}: close one first`, RETRY_AFTER.budget);
    }
    socket.once('close', leave);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // ws watches the socket from here on, and the transport ends the
      // handshake: listeners left on the socket would only hold memory for
      // the whole life of the connection.
      socket.off('error', destroyOnError);
      socket.off('close', admitted.done);
      this.attach(ws as SessionSocket, socket, identity, { since, device }, admitted.done);
    });
  }

  /**
   * Who the client is: a valid token's identity; else the connect hook's
   * answer, when there is one (an invalid token too goes to the hook, which
   * gets the `authorization` header and the query: a backend may take its
   * own opaque tokens there); else `?user=` under `--insecure`.
   */
  private async identify(req: IncomingMessage, url: URL): Promise<Identity> {
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
    throw new Refusal(401, ErrorCode.Unauthorized, 'unauthorized', 'missing token: pass ?token=<JWT> or "Authorization: Bearer <JWT>"');
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

  /**
   * `socket` is the one `ws` took over: the transport writes fan-out
   * messages to it directly (see ws-transport.ts). `handshakeDone` is called
   * at the session's first frame or close: its welcome, or the disconnect
   * in its place.
   */
  private attach(
    ws: SessionSocket,
    socket: Duplex,
    identity: Identity,
    resume: { since: StreamPosition | undefined; device: string },
    handshakeDone: () => void,
  ): void {
    const transport = new WsTransport(ws, socket, this.batch, this, handshakeDone);
    const session = this.ctx.gateway.open({
      user: identity.user,
      grants: identity.channels,
      ...(identity.exp !== undefined ? { expires: identity.exp } : {}),
      ...(identity.meta !== undefined ? { meta: identity.meta } : {}),
      since: resume.since,
      device: resume.device,
      codec: transport.codec,
      transport,
    });
    ws.bind(session, transport);
    if (identity.meta !== undefined) this.ctx.refreshHook?.schedule(session, Date.now());
  }

  /** A frame from a client (`SocketOwner`). */
  receive(session: Session, data: Buffer, isBinary: boolean): void {
    this.ctx.frames.receive(session, data, isBinary);
  }

  /** A socket error (`SocketOwner`): ws closes the socket, and its close ends the session. */
  socketError(session: Session, err: Error): void {
    this.ctx.log.debug({ err, session: session.id }, 'websocket error');
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

/** The request target as a URL, or null when it is not one (`//[/x`, `http://a:99999/ws`). */
export function requestUrl(target: string | undefined): URL | null {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

/** `?device=`: which of the user's devices connects, for its own acknowledged position ('' when absent: the user's). */
function parseDevice(url: URL): string {
  const device = url.searchParams.get('device');
  if (device === null) return '';
  if (!/^[A-Za-z0-9_\-.:@=,]{1,64}$/.test(device)) {
    throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', '?device= must be 1-64 of A-Za-z0-9_-.:@=,');
  }
  return device;
}

function parseSince(url: URL): StreamPosition | undefined {
  const offset = url.searchParams.get('since');
  const epoch = url.searchParams.get('epoch');
  if (offset === null && epoch === null) return undefined;
  const n = Number(offset);
  if (offset === null || epoch === null || !Number.isSafeInteger(n) || n < 0 || epoch.length > 64) {
    throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'recovery needs both ?since=<offset>&epoch=<epoch>');
  }
  return { offset: n, epoch };
}

/** Until ws takes the socket over: an error (a reset during the token check) just ends it. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}
