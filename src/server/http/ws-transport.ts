/**
 * The WebSocket side of a session: its `Transport`, and the `ws` socket
 * class that knows its session. A node holds 100k of these, so each
 * connection costs as few objects as possible: one transport object (no
 * closures), listeners shared by every connection (they find their session
 * through `this`), no handshake listeners left on the raw socket, and the
 * open sockets tracked by their owner rather than by `ws` (its client
 * tracking adds a closure, its context and a listener array to each).
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { codecOfSubprotocol, type WireCodec } from '../../protocol/msgpack.js';
import { binaryMessage, type Outgoing, type Session, type Transport } from '../core/session.js';
import { type CorkBatch, encodeFrame, Outlet } from './ws-out.js';

const TEXT = { binary: false } as const;
const BINARY = { binary: true } as const;
/** RFC 6455 opcode of a binary frame: every frame of a MessagePack connection. */
const OPCODE_BINARY = 0x2;

/** What a connection's listeners report to: the upgrader that attached it. */
export interface SocketOwner {
  receive(session: Session, data: Buffer, isBinary: boolean): void;
  socketError(session: Session, err: Error): void;
  /** The connection on `socket` (the one `ws` took over) is gone. */
  ended(socket: object): void;
  /** The sockets bound and not closed yet (a draining node waits for them, then ends the rest). */
  readonly sockets: Set<SessionSocket>;
}

/** `ws`'s socket with its session (the server creates these: `WebSocketServer({ WebSocket: SessionSocket })`). */
export class SessionSocket extends WebSocket {
  session: Session | undefined = undefined;
  transport: WsTransport | undefined = undefined;

  /** Start delivering the socket's events to `session`, whose transport this socket is. */
  bind(session: Session, transport: WsTransport): void {
    this.session = session;
    this.transport = transport;
    transport.owner.sockets.add(this);
    this.on('message', onMessage);
    this.on('close', onClose);
    // ws closes the socket itself after an error (e.g. 1009 for an oversized
    // frame); the 'close' event does the bookkeeping.
    this.on('error', onError);
  }
}

function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const ws = this as SessionSocket;
  if (ws.session && ws.transport) ws.transport.owner.receive(ws.session, data, isBinary);
}

/** The connection is gone: so is the handshake, if the welcome was still on its way. */
function onClose(this: WebSocket): void {
  const ws = this as SessionSocket;
  ws.transport?.owner.sockets.delete(ws);
  ws.transport?.owner.ended(ws.transport.socket);
  ws.transport?.done();
  ws.session?.gone();
}

function onError(this: WebSocket, err: Error): void {
  const ws = this as SessionSocket;
  if (ws.session && ws.transport) ws.transport.owner.socketError(ws.session, err);
}

/**
 * A session's transport. Fan-out messages are written to the raw socket
 * pre-framed, through the node's cork batch (see ws-out.ts), while the
 * connection is open and negotiated no extension (with permessage-deflate ws
 * transforms and may queue frames: it must write them all); everything else
 * goes through `ws.send`. It is its own `Outlet` in the batch.
 */
export class WsTransport extends Outlet implements Transport {
  /** Called once, at the session's first frame or its close: its welcome, or the disconnect in its place. */
  private handshakeDone: (() => void) | undefined;
  private readonly raw: boolean;
  /** From the negotiated subprotocol: on `msgpack` every frame, the session's own and fan-out ones, is binary. */
  readonly codec: WireCodec;

  constructor(
    private readonly ws: WebSocket,
    socket: Duplex,
    private readonly batch: CorkBatch,
    /** Where the connection's frames and errors go. */
    readonly owner: SocketOwner,
    handshakeDone: () => void,
  ) {
    super(socket);
    this.raw = ws.extensions === '';
    this.codec = codecOfSubprotocol(ws.protocol);
    this.handshakeDone = handshakeDone;
  }

  send(data: Buffer | string): void {
    this.ws.send(data, this.codec === 'msgpack' ? BINARY : TEXT);
    this.done();
  }

  sendMessage(message: Outgoing): void {
    const raw = this.raw && this.ws.readyState === WebSocket.OPEN;
    if (this.codec === 'msgpack') {
      const payload = binaryMessage(message);
      if (raw) this.batch.write(this, (message.binaryFrame ??= encodeFrame(payload, OPCODE_BINARY)));
      else this.ws.send(payload, BINARY);
    } else if (raw) this.batch.write(this, (message.textFrame ??= encodeFrame(message.text)));
    else this.ws.send(message.text, TEXT);
    this.done();
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
    this.done();
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** The handshake is over: the first frame went out, or the session closed before it. */
  done(): void {
    const done = this.handshakeDone;
    if (done === undefined) return;
    this.handshakeDone = undefined;
    done();
  }
}
