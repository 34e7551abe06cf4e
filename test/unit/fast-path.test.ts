/**
 * The pre-framed fan-out path: our framer is checked against ws's own
 * parser and framer, the per-tick cork batch against a recording socket,
 * and the session's fast delivery against its slow-consumer limit.
 */
import * as wsModule from 'ws';
import { describe, expect, it, vi } from 'vitest';
import { loadOptions } from '../../src/server/config/load.js';
import { Session, type Outgoing, type Transport } from '../../src/server/core/session.js';
import { CorkBatch, encodeFrame, FLUSH_AT_BYTES, flushAfter, Outlet, type CorkableSocket } from '../../src/server/http/ws-out.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';
import type { Publication } from '../../src/protocol/index.js';

/** The parts of ws's `Receiver` and `Sender` used here (its types do not declare them). */
interface ReceiverLike {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  write(chunk: Buffer): boolean;
}
interface WsInternals {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => ReceiverLike;
  Sender: {
    frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
  };
}
const { Receiver, Sender } = wsModule as unknown as WsInternals;

/** A client-side ws parser that collects text messages and errors. */
function parser(): { receiver: ReceiverLike; messages: string[]; errors: Error[] } {
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  const messages: string[] = [];
  const errors: Error[] = [];
  receiver.on('message', (data, isBinary) => {
    expect(isBinary).toBe(false);
    messages.push(data.toString('utf8'));
  });
  receiver.on('error', (err) => errors.push(err));
  return { receiver, messages, errors };
}

/** `n` bytes of text whose characters are 1 to 4 bytes long, cut on a character boundary so that it is exactly `n` bytes. */
function text(n: number): string {
  const pieces = ['a', 'é', '✓', '😀'];
  let out = '';
  let bytes = 0;
  for (let i = 0; bytes < n; i++) {
    const piece = pieces[i % pieces.length]!;
    const size = Buffer.byteLength(piece);
    if (bytes + size > n) {
      out += 'b'.repeat(n - bytes);
      break;
    }
    out += piece;
    bytes += size;
  }
  return out;
}

const LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70_001];

describe('encodeFrame', () => {
  it.each(LENGTHS)('frames a %i-byte text payload so that ws parses it back unchanged', (n) => {
    const payload = text(n);
    expect(Buffer.byteLength(payload)).toBe(n);
    const frame = encodeFrame(Buffer.from(payload));
    const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
    expect(frame.length).toBe(header + n);
    const { receiver, messages, errors } = parser();
    receiver.write(frame);
    expect(errors).toEqual([]);
    expect(messages).toEqual([payload]);
  });

  it.each(LENGTHS)('builds the same bytes as ws Sender.frame for %i bytes', (n) => {
    const payload = Buffer.from(text(n));
    const theirs = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: true, rsv1: false }));
    expect(encodeFrame(payload).equals(theirs)).toBe(true);
  });

  it('keeps frames apart when they arrive in a stream cut at odd places', () => {
    const payloads = LENGTHS.map((n) => text(n));
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(Buffer.from(p))));
    const { receiver, messages, errors } = parser();
    for (let at = 0, step = 1; at < stream.length; at += step, step = (step * 7 + 3) % 9000) {
      receiver.write(stream.subarray(at, at + step));
    }
    expect(errors).toEqual([]);
    expect(messages).toEqual(payloads);
  });

  it('frames a binary payload with opcode 2', () => {
    expect(encodeFrame(Buffer.from([1, 2, 3]), 2)).toEqual(Buffer.from([0x82, 3, 1, 2, 3]));
  });
});

/** A socket that records cork, write and uncork in order, and holds written bytes while corked. */
class RecordingSocket implements CorkableSocket {
  readonly log: string[] = [];
  private corks = 0;
  private held = 0;

  cork(): void {
    this.corks++;
    this.log.push('cork');
  }

  uncork(): void {
    this.log.push('uncork');
    if (this.corks > 0 && --this.corks === 0) this.held = 0;
  }

  write(chunk: Buffer): boolean {
    this.log.push(`write:${chunk.toString()}`);
    if (this.corks > 0) this.held += chunk.length;
    return true;
  }

  get writableLength(): number {
    return this.held;
  }
}

/** A batch whose end-of-tick flush the test runs by hand. */
function manualBatch(): { batch: CorkBatch; ticks: Array<() => void>; endTick: () => void } {
  const ticks: Array<() => void> = [];
  const batch = new CorkBatch((flush) => ticks.push(flush));
  return { batch, ticks, endTick: () => ticks.splice(0).forEach((f) => f()) };
}

describe('CorkBatch', () => {
  it('corks each socket at its first frame of a tick and uncorks every one once at the end of the tick', () => {
    const { batch, ticks, endTick } = manualBatch();
    const a = new RecordingSocket();
    const b = new RecordingSocket();
    const [oa, ob] = [new Outlet(a), new Outlet(b)];
    batch.write(oa, Buffer.from('1'));
    batch.write(ob, Buffer.from('1'));
    batch.write(oa, Buffer.from('2'));
    batch.write(oa, Buffer.from('3'));
    batch.write(ob, Buffer.from('2'));
    expect(ticks).toHaveLength(1); // one flush scheduled for the tick, not one per frame or socket
    expect(batch.pending).toBe(2);
    expect(a.log).toEqual(['cork', 'write:1', 'write:2', 'write:3']);
    endTick();
    expect(a.log).toEqual(['cork', 'write:1', 'write:2', 'write:3', 'uncork']);
    expect(b.log).toEqual(['cork', 'write:1', 'write:2', 'uncork']);
    expect(batch.pending).toBe(0);
    expect(oa.corked).toBe(false);
  });

  it('starts over in the next tick', () => {
    const { batch, ticks, endTick } = manualBatch();
    const a = new RecordingSocket();
    const oa = new Outlet(a);
    batch.write(oa, Buffer.from('1'));
    endTick();
    batch.write(oa, Buffer.from('2'));
    batch.write(oa, Buffer.from('3'));
    expect(ticks).toHaveLength(1);
    endTick();
    expect(a.log).toEqual(['cork', 'write:1', 'uncork', 'cork', 'write:2', 'write:3', 'uncork']);
  });

  it('flushes a socket early once its corked bytes reach the threshold, and keeps it corked for the rest of the tick', () => {
    const { batch, endTick } = manualBatch();
    const a = new RecordingSocket();
    const oa = new Outlet(a);
    const big = Buffer.alloc(FLUSH_AT_BYTES / 2 + 1, 'x');
    batch.write(oa, big);
    expect(a.log.filter((e) => e === 'uncork')).toHaveLength(0);
    batch.write(oa, big);
    expect(a.log.slice(-2)).toEqual(['uncork', 'cork']);
    expect(a.writableLength).toBe(0);
    endTick();
    expect(a.log.at(-1)).toBe('uncork');
    expect(a.log.filter((e) => e === 'cork')).toHaveLength(a.log.filter((e) => e === 'uncork').length);
  });

  it('flushes with the real process.nextTick', async () => {
    const batch = new CorkBatch();
    const a = new RecordingSocket();
    batch.write(new Outlet(a), Buffer.from('1'));
    expect(a.log).toEqual(['cork', 'write:1']);
    await new Promise((r) => process.nextTick(r));
    expect(a.log).toEqual(['cork', 'write:1', 'uncork']);
  });

  it('with a write delay, keeps frames of later ticks corked until the delay after the first, then flushes once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    try {
      const batch = new CorkBatch(flushAfter(20));
      const a = new RecordingSocket();
      const oa = new Outlet(a);
      batch.write(oa, Buffer.from('1'));
      await new Promise((r) => setImmediate(r)); // a later turn of the event loop
      batch.write(oa, Buffer.from('2'));
      vi.advanceTimersByTime(19);
      expect(a.log).toEqual(['cork', 'write:1', 'write:2']);
      vi.advanceTimersByTime(1);
      expect(a.log).toEqual(['cork', 'write:1', 'write:2', 'uncork']);
      batch.write(oa, Buffer.from('3'));
      vi.advanceTimersByTime(20);
      expect(a.log.slice(4)).toEqual(['cork', 'write:3', 'uncork']);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** A transport that takes the fast path and reports a settable backlog. */
class FastTransport implements Transport {
  readonly sent: string[] = [];
  readonly messages: Outgoing[] = [];
  closedWith: number | undefined;
  bufferedAmount = 0;

  send(data: Buffer | string): void {
    this.sent.push(String(data));
  }

  sendMessage(message: Outgoing): void {
    this.messages.push(message);
  }

  close(code: number): void {
    this.closedWith = code;
  }
}

async function openSession(transport: Transport, maxBufferedBytes = 1000): Promise<Session> {
  const session = new Session({
    id: 's1',
    user: 'u',
    grants: [],
    transport,
    limits: { ...DEFAULT_LIMITS, maxBufferedBytes },
    now: 0,
    onClosed: () => undefined,
  });
  session.begin('news');
  await session.ready('news', { offset: 0, epoch: 'e' }, () => undefined);
  return session;
}

function outgoing(offset: number): Outgoing {
  const pub: Publication = { channel: 'news', data: offset, offset, epoch: 'e' };
  return { pub, text: Buffer.from(JSON.stringify({ type: 'message', ...pub })) };
}

describe('Session.deliverMessage', () => {
  it('hands the shared message object to the transport, not a copy', async () => {
    const t = new FastTransport();
    const s = await openSession(t);
    const m = outgoing(1);
    expect(s.deliverMessage(m, 1)).toBe(true);
    expect(t.messages[0]).toBe(m);
    expect(t.sent).toEqual([]);
    expect(s.deliverMessage(m, 2)).toBe(false); // same offset again: dropped
  });

  it('falls back to send(text) on a transport without sendMessage', async () => {
    const sent: string[] = [];
    const s = await openSession({ send: (d) => sent.push(String(d)), close: () => undefined, bufferedAmount: 0 });
    expect(s.deliverMessage(outgoing(1), 1)).toBe(true);
    expect(sent.map((d) => JSON.parse(d) as unknown)).toEqual([{ type: 'message', channel: 'news', data: 1, offset: 1, epoch: 'e' }]);
  });

  it('closes with 4101 when the bytes written through the fast path pass the buffer limit', async () => {
    const t = new FastTransport();
    const s = await openSession(t, 1000);
    expect(s.deliverMessage(outgoing(1), 1)).toBe(true);
    t.bufferedAmount = 1001;
    expect(s.deliverMessage(outgoing(2), 2)).toBe(false);
    expect(t.closedWith).toBe(4101);
    expect(JSON.parse(t.sent.at(-1)!)).toMatchObject({ type: 'disconnect', code: 4101 });
    expect(s.deliverMessage(outgoing(3), 3)).toBe(false);
    expect(t.messages).toHaveLength(2);
  });
});

describe('--permessage-deflate', () => {
  const base = { readFile: () => '', cwd: '/' };
  it('is off by default', () => {
    expect(loadOptions({ ...base, argv: ['--insecure'], env: {} }).permessageDeflate).toBe(false);
  });

  it('is turned on by the flag, the environment or the config file', () => {
    expect(loadOptions({ ...base, argv: ['--insecure', '--permessage-deflate'], env: {} }).permessageDeflate).toBe(true);
    expect(loadOptions({ ...base, argv: ['--insecure'], env: { SWITCHBOARD_PERMESSAGE_DEFLATE: '1' } }).permessageDeflate).toBe(true);
    const file = JSON.stringify({ permessageDeflate: true });
    expect(
      loadOptions({ argv: ['--insecure', '--config', 'sb.json'], env: {}, readFile: () => file, cwd: '/' }).permessageDeflate,
    ).toBe(true);
  });
});
