/**
 * The WebSocket endpoint `GET /ws`: the path as written and the page's
 * `Origin` (origin.ts), which no state of the node makes right, are checked
 * first; then the limits and the client's identity (HTTP 401/429/503, see
 * admit.ts); then the socket becomes a `Session`.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import { ErrorCode, type StreamPosition } from '../../protocol/index.js';
import { selectSubprotocol } from '../../protocol/msgpack.js';
import type { Identity } from '../auth/token.js';
import type { Session } from '../core/session.js';
import { type Door, type EndpointContext, IN_FIRST_FRAME, parseDevice, Refusal, requestUrl, sessionIdentity } from './admit.js';
import { dropIdleTimer } from './harden.js';
import { OriginPolicy } from './origin.js';
import { isNormalPath } from './path.js';
import { refuseUpgrade } from './respond.js';
import { CorkBatch, flushAfter } from './ws-out.js';
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

/** Where the personal channel resumes (`?since=&epoch=`, `?device=`). */
interface Resume {
  since: StreamPosition | undefined;
  device: string;
}

export class Upgrader implements SocketOwner {
  readonly wss: WebSocketServer;
  /** The sockets bound to a session and not closed yet (`SocketOwner`). */
  readonly sockets = new Set<SessionSocket>();
  /** Corks the sockets written by fan-out in one tick (or `--write-delay`) and flushes them together. */
  private readonly batch: CorkBatch;
  /** Which browser pages may open a socket: the node's own origin, its cluster's, and `--allowed-origins`. */
  private readonly origins: OriginPolicy;

  constructor(
    private readonly ctx: EndpointContext & {
      /** Whether a browser `Origin` (lower case) is that of a node of the cluster, whose pages may connect here too. */
      peerOrigin?: (origin: string) => boolean;
    },
    /** The limits, admission and identity this endpoint shares with `/sse`. */
    private readonly door: Door,
  ) {
    this.origins = new OriginPolicy(ctx.options.allowedOrigins);
    this.batch = new CorkBatch(flushAfter(ctx.options.writeDelay));
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: ctx.options.limits.maxFrameBytes,
      perMessageDeflate: ctx.options.permessageDeflate ? DEFLATE : false,
      // The open sockets are tracked in `sockets`, through the listeners every connection shares.
      clientTracking: false,
      WebSocket: SessionSocket,
      handleProtocols: (protocols) => selectSubprotocol(protocols, ctx.options.msgpack),
    });
  }

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    this.accept(req, socket, head).catch((err: unknown) => {
      const refusal = this.door.refusal(err, 'upgrade');
      if (socket.destroyed) return;
      const headers: Record<string, string> = refusal.retryAfter === undefined ? {} : { 'Retry-After': String(refusal.retryAfter) };
      refuseUpgrade(socket, refusal.status, { code: refusal.code, message: refusal.message }, headers);
    });
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = requestUrl(req.url);
    if (!url) throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'malformed request target');
    if (url.pathname !== '/ws' || !isNormalPath(req.url, url)) throw new Refusal(404, ErrorCode.NotFound, 'not_found', 'WebSocket endpoint is /ws');
    // Before anything that costs: a page of another site is refused whatever the node's state (origin.ts).
    if (!this.origins.allows(req.headers.origin, req.headers.host, this.ctx.peerOrigin)) {
      throw new Refusal(403, ErrorCode.Forbidden, 'origin', "this page's Origin may not connect: add it to --allowed-origins");
    }
    const { identity, request, done } = await this.door.enter(req, url, (u) => ({ since: parseSince(u), device: parseDevice(u) }), true);
    if (socket.destroyed) return done();
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // ws watches the socket from here on, and the transport ends the
      // handshake: listeners left on the socket would only hold memory for
      // the whole life of the connection.
      socket.off('error', destroyOnError);
      dropIdleTimer(socket);
      if (identity !== IN_FIRST_FRAME) return void this.attach(ws as SessionSocket, socket, identity, request, done);
      void this.attachOnConnectFrame(ws as SessionSocket, socket, req, request, done);
    });
  }

  /**
   * An upgrade that named nobody: the session opens once the first frame's
   * token is checked (see first-frame.ts), and gets the frames that followed
   * it. Until then the socket counts as a connection being opened, and the
   * handshake as one in flight.
   */
  private async attachOnConnectFrame(ws: SessionSocket, socket: Duplex, req: IncomingMessage, resume: Resume, handshakeDone: () => void): Promise<void> {
    const outcome = await this.door.firstFrame(ws, req);
    if (!outcome) return handshakeDone();
    const session = this.attach(ws, socket, outcome.identity, resume, handshakeDone);
    for (const frame of outcome.early) this.receive(session, frame.data, frame.isBinary);
  }

  /**
   * `socket` is the one `ws` took over: the transport writes fan-out
   * messages to it directly (see ws-transport.ts). `handshakeDone` is called
   * at the session's first frame or close: its welcome, or the disconnect
   * in its place.
   */
  private attach(ws: SessionSocket, socket: Duplex, identity: Identity, resume: Resume, handshakeDone: () => void): Session {
    const transport = new WsTransport(ws, socket, this.batch, this, handshakeDone);
    const session = this.ctx.gateway.open({
      ...sessionIdentity(identity),
      since: resume.since,
      device: resume.device,
      codec: transport.codec,
      transport,
    });
    ws.bind(session, transport);
    if (identity.meta !== undefined) this.ctx.refreshHook?.schedule(session, Date.now());
    return session;
  }

  /** A frame from a client (`SocketOwner`). */
  receive(session: Session, data: Buffer, isBinary: boolean): void {
    this.ctx.frames.receive(session, data, isBinary);
  }

  /** A connection is gone (`SocketOwner`): its place under the connection caps is free. */
  ended(socket: object): void {
    this.door.leave(socket);
  }

  /** A socket error (`SocketOwner`): ws closes the socket, and its close ends the session. */
  socketError(session: Session, err: Error): void {
    this.ctx.log.debug({ err, session: session.id }, 'websocket error');
  }
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
