/**
 * The WebSocket endpoint `GET /ws`: limits and the token are checked before
 * the upgrade (HTTP 401/429/503), then the socket becomes a `Session`.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { ErrorCode, isValidUserId, SUBPROTOCOL, type StreamPosition } from '../../protocol/index.js';
import { TokenError, type Identity, type TokenVerifier } from '../auth/token.js';
import type { FrameHandler } from '../core/frame-handler.js';
import type { Gateway } from '../core/gateway.js';
import { IpConnectionLimiter } from '../core/rate.js';
import type { Metrics } from '../metrics.js';
import type { NodeOptions } from '../options.js';
import { refuseUpgrade } from './respond.js';

const TEXT = { binary: false } as const;

export interface UpgradeContext {
  options: NodeOptions;
  gateway: Gateway;
  frames: FrameHandler;
  verifier: TokenVerifier;
  metrics: Metrics;
  log: Logger;
  /** True once the node drains: new connections are refused with 503. */
  draining: () => boolean;
  ready: () => boolean;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: (typeof ErrorCode)[keyof typeof ErrorCode],
    message: string,
  ) {
    super(message);
  }
}

export class Upgrader {
  readonly wss: WebSocketServer;
  private readonly ipLimiter: IpConnectionLimiter;
  /** Upgrades accepted but not yet sessions (token being checked). */
  private pending = 0;

  constructor(private readonly ctx: UpgradeContext) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: ctx.options.limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: true,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.ipLimiter = new IpConnectionLimiter(ctx.options.limits.maxConnectionsPerIpPerSecond);
  }

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.accept(req, socket, head).catch((err: unknown) => {
      const refusal =
        err instanceof Refusal ? err : new Refusal(500, ErrorCode.Internal, 'internal error');
      if (refusal.status === 500) this.ctx.log.error({ err }, 'upgrade failed');
      this.ctx.metrics.rejected.inc({ reason: refusal.code });
      if (!socket.destroyed) refuseUpgrade(socket, refusal.status, { code: refusal.code, message: refusal.message });
    });
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') throw new Refusal(404, ErrorCode.NotFound, 'WebSocket endpoint is /ws');
    if (this.ctx.draining()) throw new Refusal(503, ErrorCode.Unavailable, 'node is draining: connect to another node');
    if (!this.ctx.ready()) throw new Refusal(503, ErrorCode.Unavailable, 'node is not ready: broker unreachable');
    if (this.ctx.gateway.sessions.size + this.pending >= this.ctx.options.limits.maxConnections) {
      throw new Refusal(503, ErrorCode.Unavailable, 'node is at its connection limit: connect to another node');
    }
    const ip = this.clientIp(req);
    if (!this.ipLimiter.allow(ip, Date.now())) {
      throw new Refusal(429, ErrorCode.RateLimited, 'too many new connections from this address: retry later');
    }
    const since = parseSince(url);
    this.pending++;
    let identity: Identity;
    try {
      identity = await this.identify(req, url);
    } finally {
      this.pending--;
    }
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, identity, since));
  }

  private async identify(req: IncomingMessage, url: URL): Promise<Identity> {
    const header = req.headers.authorization;
    const token = url.searchParams.get('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined);
    if (token) {
      try {
        return await this.ctx.verifier.verify(token);
      } catch (err) {
        throw new Refusal(401, ErrorCode.Unauthorized, err instanceof TokenError ? err.message : 'invalid token');
      }
    }
    if (this.ctx.options.insecure) {
      const user = url.searchParams.get('user');
      if (!isValidUserId(user)) {
        throw new Refusal(401, ErrorCode.Unauthorized, 'insecure mode: pass ?user=<id> (1-250 of A-Za-z0-9_-.:@=,)');
      }
      return { user, channels: [] };
    }
    throw new Refusal(401, ErrorCode.Unauthorized, 'missing token: pass ?token=<JWT> or "Authorization: Bearer <JWT>"');
  }

  private attach(ws: WebSocket, identity: Identity, since: StreamPosition | undefined): void {
    const session = this.ctx.gateway.open({
      user: identity.user,
      grants: identity.channels,
      since,
      transport: {
        send: (data) => ws.send(data, TEXT),
        close: (code, reason) => ws.close(code, reason),
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
      },
    });
    ws.on('message', (data, isBinary) => this.ctx.frames.receive(session, data as Buffer, isBinary));
    ws.on('close', () => session.gone());
    // ws closes the socket itself after an error (e.g. 1009 for an oversized
    // frame); the 'close' event above does the bookkeeping.
    ws.on('error', (err) => this.ctx.log.debug({ err, session: session.id }, 'websocket error'));
  }

  private clientIp(req: IncomingMessage): string {
    if (this.ctx.options.trustProxy) {
      const forwarded = req.headers['x-forwarded-for'];
      const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
      if (first) return first;
    }
    return req.socket.remoteAddress ?? 'unknown';
  }
}

function parseSince(url: URL): StreamPosition | undefined {
  const offset = url.searchParams.get('since');
  const epoch = url.searchParams.get('epoch');
  if (offset === null && epoch === null) return undefined;
  const n = Number(offset);
  if (offset === null || epoch === null || !Number.isSafeInteger(n) || n < 0 || epoch.length > 64) {
    throw new Refusal(400, ErrorCode.BadRequest, 'recovery needs both ?since=<offset>&epoch=<epoch>');
  }
  return { offset: n, epoch };
}
