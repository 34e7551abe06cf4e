/**
 * The fast outgoing path for fan-out: a publication's WebSocket frame is
 * built once and the same bytes are written to every subscriber's socket,
 * and the sockets written in one tick are corked until the tick ends, so
 * that several messages due on one socket leave in one `writev`.
 *
 * Why writing beside `ws` is safe: `ws`'s `Sender` writes each frame to the
 * socket at once, in call order, except while it is compressing
 * (permessage-deflate) or reading a `Blob`; only then does it queue frames
 * (`Sender#enqueue`). We take this path only on connections that negotiated
 * no extension, and the server never sends a `Blob`, so `ws` never holds a
 * frame back there and our frames cannot overtake or be overtaken by its
 * own (replies, pong, close). Its `bufferedAmount` is the socket's
 * `writableLength` plus its queue, so it counts the bytes written here, and
 * the slow-consumer limit still sees them.
 */

/** The part of a `net.Socket` the batch uses (a recorder in unit tests). */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
  /** Bytes buffered in the stream, corked ones included. */
  readonly writableLength: number;
}

/** One connection's socket, and whether the current tick has corked it. */
export class Outlet {
  /** Set while the socket is corked by the batch, until the end-of-tick flush. */
  corked = false;
  constructor(readonly socket: CorkableSocket) {}
}

/**
 * Past this many buffered bytes a corked socket is flushed at once rather
 * than at the end of the tick: a burst then does not pile up in user space
 * and count against the slow-consumer limit while the kernel could take it.
 */
export const FLUSH_AT_BYTES = 64 * 1024;

/**
 * When a batch flushes: at the end of the tick in which its first frame was
 * written (`delayMs` 0), or `delayMs` later (`--write-delay`), so that the
 * frames of publications arriving over that time share one write per
 * socket. A reply written by `ws` to a corked socket waits for the same
 * flush, so its order against the fan-out frames is kept.
 */
export function flushAfter(delayMs: number): (flush: () => void) => void {
  if (delayMs > 0) return (flush) => void setTimeout(flush, delayMs);
  return (flush) => process.nextTick(flush);
}

/**
 * Corks each socket on its first frame of a tick and uncorks all of them in
 * one callback (`flushAfter`: the end of the tick, or after the write delay).
 * Nothing is allocated per frame: the list of corked outlets is one array
 * reused every tick, the flush is one bound function, and the per-socket
 * state is a field of its `Outlet`.
 */
export class CorkBatch {
  private readonly corked: Outlet[] = [];
  private scheduled = false;

  constructor(private readonly defer: (flush: () => void) => void = flushAfter(0)) {}

  /** Write `frame` to the outlet's socket, corking it until the end of this tick. */
  write(outlet: Outlet, frame: Buffer): void {
    const socket = outlet.socket;
    if (!outlet.corked) {
      socket.cork();
      outlet.corked = true;
      this.corked.push(outlet);
      if (!this.scheduled) {
        this.scheduled = true;
        this.defer(this.flush);
      }
    }
    socket.write(frame);
    if (socket.writableLength >= FLUSH_AT_BYTES) {
      socket.uncork();
      socket.cork();
    }
  }

  /** Sockets corked and not yet flushed (tests). */
  get pending(): number {
    return this.corked.length;
  }

  /** Uncork every socket corked since the last flush. An outlet corked during the flush is flushed too (the loop reads the live length). */
  readonly flush = (): void => {
    this.scheduled = false;
    const corked = this.corked;
    for (let i = 0; i < corked.length; i++) {
      const outlet = corked[i]!;
      outlet.corked = false;
      outlet.socket.uncork();
    }
    corked.length = 0;
  };
}

const OPCODE_TEXT = 0x1;
const FIN = 0x80;

/**
 * A complete, unmasked (server-to-client) WebSocket frame, FIN set, of
 * `payload` as one buffer: 2 header bytes for up to 125 payload bytes, 4
 * for up to 65535, 10 beyond (RFC 6455 §5.2). `opcode` 1 is text, 2 binary.
 */
export function encodeFrame(payload: Buffer, opcode: number = OPCODE_TEXT): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = FIN | opcode;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    // Payloads are far below 2^53: the high word fits a double exactly.
    frame.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  payload.copy(frame, header);
  return frame;
}
