/**
 * The SDK's `codec` option against a scripted `ws` server: what it offers,
 * that it speaks MessagePack in both directions when the server selects
 * `switchboard.v1.msgpack`, and that it falls back to JSON on a connection
 * where the server selected plain `switchboard.v1`.
 */
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { SwitchboardClient, type ClientOptions, type ConnectedEvent } from '../../src/client/index.js';
import { ClientError } from '../../src/client/errors.js';
import { decodeClientFrame, type DecodeResult } from '../../src/protocol/codec.js';
import type { ClientFrame, ServerFrame, WelcomeFrame } from '../../src/protocol/frames.js';
import { decodeClientFrameBinary, encodeServerFrameBinary, MSGPACK_SUBPROTOCOL } from '../../src/protocol/msgpack.js';

interface Received {
  binary: boolean;
  frame: ClientFrame;
}

/** One scripted connection: what the client offered and sent; `send` answers in the negotiated codec. */
class Conn {
  readonly received: Received[] = [];
  readonly offered: string | undefined;
  constructor(
    readonly ws: WebSocket,
    req: IncomingMessage,
  ) {
    // ws joins the offered protocols with "," (browsers with ", "): compare without blanks.
    this.offered = req.headers['sec-websocket-protocol']?.replace(/\s/g, '');
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buffer = data as Buffer;
      const decoded: DecodeResult = isBinary ? decodeClientFrameBinary(buffer) : decodeClientFrame(buffer.toString('utf8'));
      if (!decoded.ok) throw new Error(`client sent a bad frame: ${decoded.error.message}`);
      this.received.push({ binary: isBinary, frame: decoded.frame });
    });
  }

  get msgpack(): boolean {
    return this.ws.protocol === MSGPACK_SUBPROTOCOL;
  }

  send(frame: ServerFrame): void {
    this.ws.send(this.msgpack ? encodeServerFrameBinary(frame) : JSON.stringify(frame));
  }

  welcome(): void {
    const w: WelcomeFrame = {
      type: 'welcome',
      session: 's1',
      node: 'fake',
      user: 'alice',
      channel: 'user:alice',
      offset: 0,
      epoch: 'e',
      recovered: true,
      messages: [],
      ping: 25,
    };
    this.send(w);
  }

  next(type: ClientFrame['type']): Promise<Received> {
    return vi.waitUntil(() => this.received.find((r) => r.frame.type === type), { timeout: 3000, interval: 5 });
  }
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A server that selects the MessagePack subprotocol only when `msgpack` is on, like the node's `--msgpack`. */
async function start(msgpack: boolean, opts: Partial<ClientOptions>) {
  const conns: Conn[] = [];
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    handleProtocols: (protocols) =>
      msgpack && protocols.has(MSGPACK_SUBPROTOCOL) ? MSGPACK_SUBPROTOCOL : protocols.has('switchboard.v1') ? 'switchboard.v1' : false,
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (ws, req) => {
    const conn = new Conn(ws, req);
    conns.push(conn);
    conn.welcome();
  });
  closers.push(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const address = wss.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const client = new SwitchboardClient({ url: `ws://127.0.0.1:${port}/ws`, WebSocket, params: { user: 'alice' }, ...opts });
  closers.push(async () => client.disconnect());
  const connected = new Promise<ConnectedEvent>((resolve) => client.once('connected', resolve));
  const errors: ClientError[] = [];
  client.on('error', (e) => errors.push(e.error));
  client.connect();
  const info = await connected;
  const conn = await vi.waitUntil(() => conns[0], { timeout: 3000, interval: 5 });
  return { client, conn, info, errors };
}

describe('codec option', () => {
  it('refuses an unknown codec at construction', () => {
    expect(() => new SwitchboardClient({ url: 'ws://x/ws', WebSocket, codec: 'cbor' as 'json' })).toThrow(TypeError);
  });

  it('json (the default) offers switchboard.v1 only and sends text', async () => {
    const { client, conn, info } = await start(true, {});
    expect(conn.offered).toBe('switchboard.v1');
    expect(info.codec).toBe('json');
    const ping = client.ping();
    const got = await conn.next('ping');
    expect(got.binary).toBe(false);
    conn.send({ type: 'pong', id: (got.frame as { id: number }).id });
    await ping;
  });

  it('msgpack offers the MessagePack subprotocol first and then speaks MessagePack both ways', async () => {
    const { client, conn, info, errors } = await start(true, { codec: 'msgpack' });
    expect(conn.offered).toBe(`${MSGPACK_SUBPROTOCOL},switchboard.v1`);
    expect(info.codec).toBe('msgpack');
    expect(client.connection?.codec).toBe('msgpack');

    const data = { text: 'héllo', n: [1, 2.5, -3], nested: { ok: true, none: null } };
    const publish = client.publish('chat:a', data);
    const sent = await conn.next('publish');
    expect(sent).toEqual({ binary: true, frame: { type: 'publish', id: expect.any(Number), channel: 'chat:a', data } });
    conn.send({ type: 'reply', id: (sent.frame as { id: number }).id, result: { offset: 5, epoch: 'e' } });
    expect(await publish).toEqual({ offset: 5, epoch: 'e' });

    const messages: unknown[] = [];
    client.on('message', (m) => messages.push(m));
    const sub = client.subscribe('chat:a');
    const subscribe = await conn.next('subscribe');
    expect(subscribe.binary).toBe(true);
    const subId = (subscribe.frame as { id: number }).id;
    conn.send({ type: 'reply', id: subId, result: { channel: 'chat:a', offset: 5, epoch: 'e', recovered: true, messages: [] } });
    await vi.waitUntil(() => sub.state === 'subscribed', { timeout: 3000, interval: 5 });
    conn.send({ type: 'message', channel: 'chat:a', data, offset: 6, epoch: 'e', from: 'bob' });
    await vi.waitUntil(() => messages.length === 1, { timeout: 3000, interval: 5 });
    expect(messages[0]).toEqual({ channel: 'chat:a', data, offset: 6, epoch: 'e', from: 'bob' });

    // A text frame on a MessagePack connection is malformed: reported, dropped, the connection stays.
    conn.ws.send(JSON.stringify({ type: 'ping' }));
    await vi.waitUntil(() => errors.length > 0, { timeout: 3000, interval: 5 });
    expect(errors[0]?.code).toBe('bad_frame');
    expect(client.state).toBe('connected');
  });

  it('msgpack falls back to JSON on a connection where the server selected switchboard.v1', async () => {
    const { client, conn, info } = await start(false, { codec: 'msgpack' });
    expect(conn.offered).toBe(`${MSGPACK_SUBPROTOCOL},switchboard.v1`);
    expect(conn.ws.protocol).toBe('switchboard.v1');
    expect(info.codec).toBe('json');
    const publish = client.publish('chat:a', { x: 1 });
    const sent = await conn.next('publish');
    expect(sent.binary).toBe(false);
    conn.send({ type: 'reply', id: (sent.frame as { id: number }).id, result: {} });
    expect(await publish).toEqual({});
  });
});
