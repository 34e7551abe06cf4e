// One connection of a load generator, per server kind, opened from a given
// source address (`localAddress`, somewhere in 127.0.0.0/8, so that many
// processes together can hold far more than one address's ~28k ephemeral
// ports). Each reports its connect latency (upgrade request → ready) and
// hands every payload it receives to `onData`. For recovery a connection can
// be dropped (no goodbye, as a network loss) and rejoined from its position.
import WebSocket from 'ws';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { SwitchboardApi } from '../../src/server-sdk/index.js';
import { MAX_IN_FLIGHT, postJson } from '../lib/http.js';
import { API_KEY } from '../lib/paths.js';
import type { Kind } from '../lib/servers.js';
import { type Join, nowMs, type Payload, REPLAY_CHANNEL, ROOM, type Via } from './protocol.js';

export const CONNECT_TIMEOUT_MS = 15_000;

export interface ConnSpec {
  kind: Kind;
  port: number;
  user: string;
  join: Join;
  /** With join `room`: the room (a Switchboard channel) to join instead of `ROOM`. */
  room?: string;
  localAddress: string;
  onData: (conn: Conn, p: Payload) => void;
}

export interface Conn {
  readonly user: string;
  /** Payloads received in the current phase. */
  received: number;
  /** Resolves with the connect latency in ms once ready (and joined); rejects after `CONNECT_TIMEOUT_MS`. */
  open(): Promise<number>;
  /** Closes without a goodbye; false when there is no position to recover from. */
  drop(): boolean;
  /** Reconnects from the remembered position; resolves with whether the server said it recovered everything. */
  rejoin(): Promise<boolean>;
  close(): void;
}

/** Runs `start` with a deadline; `start` gets resolve/reject and returns its clean-up for the failure path. */
function bounded<T>(what: string, start: (ok: (v: T) => void, fail: (e: Error) => void) => () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    let cleanup = (): void => {};
    const finish = (err: Error | undefined, v?: T): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        cleanup();
        reject(err);
      } else resolve(v as T);
    };
    const timer = setTimeout(() => finish(new Error(`${what}: not ready in ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    cleanup = start((v) => finish(undefined, v), (e) => finish(e));
  });
}

interface SbFrame {
  type: string;
  id?: number;
  data?: unknown;
  channel?: string;
  offset?: number;
  epoch?: string;
  error?: unknown;
  code?: number;
  reason?: string;
  result?: { offset?: number; epoch?: string; recovered?: boolean; messages?: { data: unknown; offset?: number }[] };
}

/** Switchboard over raw frames (docs/protocol.md): `welcome`, `subscribe` (with `since` on rejoin), `pong`. */
class SwitchboardConn implements Conn {
  received = 0;
  private ws: WebSocket | undefined;
  private position: { offset: number; epoch: string } | undefined;

  constructor(private readonly spec: ConnSpec) {}

  get user(): string {
    return this.spec.user;
  }

  open(): Promise<number> {
    return this.connect(undefined).then((r) => r.latency);
  }

  drop(): boolean {
    this.ws?.terminate();
    this.ws = undefined;
    return this.position !== undefined;
  }

  rejoin(): Promise<boolean> {
    return this.connect(this.position).then((r) => r.recovered);
  }

  close(): void {
    this.ws?.terminate();
    this.ws = undefined;
  }

  private channel(): string | undefined {
    return this.spec.join === 'room' ? (this.spec.room ?? ROOM) : this.spec.join === 'replay' ? REPLAY_CHANNEL : undefined;
  }

  private connect(since: { offset: number; epoch: string } | undefined): Promise<{ latency: number; recovered: boolean }> {
    const { port, user, localAddress } = this.spec;
    const url = `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}`;
    return bounded(url, (ok, fail) => {
      const t0 = nowMs();
      let latency = 0;
      const ws = new WebSocket(url, { perMessageDeflate: false, localAddress });
      this.ws = ws;
      const channel = this.channel();
      ws.on('message', (raw) => {
        const f = JSON.parse(String(raw)) as SbFrame;
        if (f.type === 'message') {
          if (f.channel === REPLAY_CHANNEL && f.offset !== undefined && f.epoch !== undefined) this.position = { offset: f.offset, epoch: f.epoch };
          this.spec.onData(this, f.data as Payload);
        } else if (f.type === 'ping') ws.send('{"type":"pong"}');
        else if (f.type === 'welcome') {
          latency = nowMs() - t0;
          if (channel === undefined) return ok({ latency, recovered: true });
          ws.send(JSON.stringify(since ? { type: 'subscribe', id: 1, channel, since } : { type: 'subscribe', id: 1, channel }));
        } else if (f.type === 'reply' && f.id === 1) {
          if (f.error || !f.result) return fail(new Error(`subscribe ${channel}: ${JSON.stringify(f.error)}`));
          const r = f.result;
          if (channel === REPLAY_CHANNEL && r.offset !== undefined && r.epoch !== undefined) this.position = { offset: r.offset, epoch: r.epoch };
          for (const m of r.messages ?? []) this.spec.onData(this, m.data as Payload);
          ok({ latency, recovered: r.recovered !== false });
        } else if (f.type === 'disconnect') fail(new Error(`${url}: disconnect ${f.code} ${f.reason}`));
      });
      ws.on('unexpected-response', (_q, res) => fail(new Error(`${url}: HTTP ${res.statusCode}`)));
      ws.on('error', fail);
      ws.on('close', (code) => fail(new Error(`${url}: closed with ${code}`)));
      return () => ws.terminate();
    });
  }
}

/**
 * Socket.IO client, websocket transport, no automatic reconnection. Drop
 * closes the engine (the server sees "transport close", a reason it keeps
 * the session for under `connectionStateRecovery`); rejoin calls
 * `socket.connect()`, which sends the session id and last offset.
 */
class SocketIoConn implements Conn {
  received = 0;
  private socket: Socket | undefined;

  constructor(private readonly spec: ConnSpec) {}

  get user(): string {
    return this.spec.user;
  }

  open(): Promise<number> {
    const { port, user, join, localAddress } = this.spec;
    const url = `http://127.0.0.1:${port}`;
    const room = join === 'room' ? (this.spec.room ?? ROOM) : join === 'replay' ? REPLAY_CHANNEL : undefined;
    const options: Partial<ManagerOptions & SocketOptions> & { localAddress: string } = {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: room === undefined ? { user } : { user, room },
      localAddress,
    };
    return bounded(url, (ok, fail) => {
      const t0 = nowMs();
      const socket = io(url, options);
      this.socket = socket;
      socket.on('message', (p: Payload) => this.spec.onData(this, p));
      socket.once('connect', () => ok(nowMs() - t0));
      socket.once('connect_error', fail);
      return () => socket.disconnect();
    });
  }

  drop(): boolean {
    this.socket?.io.engine.close();
    return true;
  }

  rejoin(): Promise<boolean> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new Error('never opened'));
    return bounded(`rejoin ${this.user}`, (ok, fail) => {
      socket.once('connect', () => ok(socket.recovered));
      socket.once('connect_error', fail);
      socket.connect();
      return () => socket.disconnect();
    });
  }

  close(): void {
    this.socket?.disconnect();
    this.socket = undefined;
  }
}

/** Bare ws: `?user=&room=`, ready at `open`; nothing to recover from. */
class WsConn implements Conn {
  received = 0;
  private ws: WebSocket | undefined;

  constructor(private readonly spec: ConnSpec) {}

  get user(): string {
    return this.spec.user;
  }

  open(): Promise<number> {
    const { port, user, join, localAddress } = this.spec;
    const room = join === 'room' ? `&room=${this.spec.room ?? ROOM}` : join === 'replay' ? `&room=${REPLAY_CHANNEL}` : '';
    const url = `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}${room}`;
    return bounded(url, (ok, fail) => {
      const t0 = nowMs();
      const ws = new WebSocket(url, { perMessageDeflate: false, localAddress });
      this.ws = ws;
      ws.on('message', (raw) => this.spec.onData(this, (JSON.parse(String(raw)) as { data: Payload }).data));
      ws.once('open', () => ok(nowMs() - t0));
      ws.on('error', fail);
      ws.on('close', (code) => fail(new Error(`${url}: closed with ${code}`)));
      return () => ws.terminate();
    });
  }

  drop(): boolean {
    this.close();
    return false;
  }

  rejoin(): Promise<boolean> {
    return Promise.reject(new Error('bare ws keeps no history: nothing to recover'));
  }

  close(): void {
    this.ws?.terminate();
    this.ws = undefined;
  }
}

export function makeConn(spec: ConnSpec): Conn {
  return spec.kind === 'switchboard' ? new SwitchboardConn(spec) : spec.kind === 'socketio' ? new SocketIoConn(spec) : new WsConn(spec);
}

/**
 * A publisher for the targeted scenario, by `via` (protocol.ts): a
 * WebSocket connection (Switchboard's `send` frame, replies counted for
 * failures; a Socket.IO `send` event that the server turns into
 * `io.to(user).emit`; the ws floor's `send` frame), HTTP requests, or the
 * server SDK's batches.
 */
export interface Publisher {
  send(n: number, user: string, payload: Payload): void;
  /** Bytes written but not yet sent; the generator skips a tick when this is large. */
  buffered(): number;
  failed(): number;
  firstError(): string | undefined;
  /** Replies still owed (Switchboard only). */
  pending(): number;
  close(): void;
}

/** HTTP requests (or SDK calls) under way at once per publisher, at most; past this the publisher skips ticks (falls behind its rate). */
const HTTP_PENDING_MAX = MAX_IN_FLIGHT;
const SDK_PENDING_MAX = 20_000;

/** A publisher whose every send is a promise: one HTTP request each, or one call of the server SDK (which batches them). */
function callingPublisher(call: (user: string, data: Payload) => Promise<void>, most: number): Publisher {
  let failed = 0;
  let firstError: string | undefined;
  let pending = 0;
  return {
    send: (_n, to, data) => {
      pending++;
      call(to, data).then(
        () => pending--,
        (err: unknown) => {
          pending--;
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        },
      );
    },
    buffered: () => (pending >= most ? Number.POSITIVE_INFINITY : 0),
    failed: () => failed,
    firstError: () => firstError,
    pending: () => pending,
    close: () => {},
  };
}

export interface PublisherSpec {
  kind: Kind;
  via: Via;
  /** `via` batch: the SDK's `maxInFlight`. */
  batchInFlight: number;
}

export async function openPublisher(spec: PublisherSpec, port: number, user: string, localAddress: string): Promise<Publisher> {
  const { kind, via } = spec;
  if (via === 'http') return callingPublisher((to, data) => postJson(port, kind === 'switchboard' ? '/api/send' : '/send', { user: to, data }), HTTP_PENDING_MAX);
  if (via === 'batch') {
    if (kind !== 'switchboard') throw new Error(`${kind} has no batch API`);
    // No retries: a refusal is counted, not hidden behind a second attempt.
    const api = new SwitchboardApi({ baseUrl: `http://127.0.0.1:${port}`, apiKey: API_KEY, maxInFlight: spec.batchInFlight, retries: 0 });
    return callingPublisher(async (to, data) => void (await api.send(to, data)), SDK_PENDING_MAX);
  }
  let failed = 0;
  let firstError: string | undefined;
  let pending = 0;
  if (kind === 'socketio') {
    const url = `http://127.0.0.1:${port}`;
    const options: Partial<ManagerOptions & SocketOptions> & { localAddress: string } = { transports: ['websocket'], reconnection: false, forceNew: true, auth: { user }, localAddress };
    const socket = await bounded<Socket>(url, (ok, fail) => {
      const s = io(url, options);
      s.once('connect', () => ok(s));
      s.once('connect_error', fail);
      return () => s.disconnect();
    });
    // Emits while disconnected would wait in the client's buffer for a reconnect that never comes: count them as failed.
    socket.on('disconnect', (reason) => (firstError ??= `publisher disconnected: ${reason}`));
    return {
      send: (_n, to, data) => {
        if (!socket.connected) failed++;
        socket.emit('send', { user: to, data });
      },
      buffered: () => (socket.io.engine.transport as unknown as { ws?: WebSocket }).ws?.bufferedAmount ?? 0,
      failed: () => failed,
      firstError: () => firstError,
      pending: () => 0,
      close: () => socket.disconnect(),
    };
  }
  const url = `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}`;
  const ws = await bounded<WebSocket>(url, (ok, fail) => {
    const w = new WebSocket(url, { perMessageDeflate: false, localAddress });
    if (kind === 'ws') w.once('open', () => ok(w));
    w.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as SbFrame;
      if (f.type === 'welcome') ok(w);
      else if (f.type === 'ping') w.send('{"type":"pong"}');
      else if (f.type === 'reply') {
        pending--;
        if (f.error) {
          failed++;
          firstError ??= JSON.stringify(f.error);
        }
      }
    });
    w.on('error', (e) => {
      failed++;
      firstError ??= e.message;
      fail(e);
    });
    return () => w.terminate();
  });
  return {
    send: (n, to, data) => {
      if (kind === 'switchboard') {
        pending++;
        ws.send(`{"type":"send","id":${n + 1},"user":${JSON.stringify(to)},"data":${JSON.stringify(data)}}`);
      } else ws.send(`{"type":"send","user":${JSON.stringify(to)},"data":${JSON.stringify(data)}}`);
    },
    buffered: () => ws.bufferedAmount,
    failed: () => failed,
    firstError: () => firstError,
    pending: () => pending,
    close: () => ws.terminate(),
  };
}
