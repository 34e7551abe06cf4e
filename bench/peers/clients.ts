// One client per kind, all in this process: it connects (as user `user`,
// in room `room` when given), hands each message's `data` to `onData`, and
// closes. Switchboard: raw protocol over `ws` (welcome, subscribe, pong);
// Socket.IO: socket.io-client, websocket transport, no reconnection; ws: a
// bare socket. Every connect is bounded by `CONNECT_TIMEOUT_MS`.
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import type { Kind } from './servers.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface Client {
  close(): void;
}

export type OnData = (data: unknown) => void;

function bounded<T>(what: string, start: (ok: (v: T) => void, fail: (e: Error) => void) => () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let cleanup = (): void => {};
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: not connected in ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    cleanup = start(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        cleanup();
        reject(e);
      },
    );
  });
}

function switchboard(port: number, user: string, room: string | undefined, onData: OnData): Promise<Client> {
  const url = `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}`;
  return bounded(url, (ok, fail) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const client = { close: () => ws.terminate() };
    ws.on('message', (raw) => {
      const f = JSON.parse(String(raw)) as { type: string; data?: unknown; id?: number; error?: unknown; code?: number; reason?: string };
      if (f.type === 'message') onData(f.data);
      else if (f.type === 'ping') ws.send('{"type":"pong"}');
      else if (f.type === 'welcome') {
        if (room === undefined) ok(client);
        else ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: room }));
      } else if (f.type === 'reply' && f.id === 1) {
        if (f.error) fail(new Error(`subscribe ${room}: ${JSON.stringify(f.error)}`));
        else ok(client);
      } else if (f.type === 'disconnect') fail(new Error(`${url}: disconnect ${f.code} ${f.reason}`));
    });
    ws.on('unexpected-response', (_q, res) => fail(new Error(`${url}: HTTP ${res.statusCode}`)));
    ws.on('error', fail);
    ws.on('close', (code) => fail(new Error(`${url}: closed with ${code}`)));
    return client.close;
  });
}

function socketio(port: number, user: string, room: string | undefined, onData: OnData): Promise<Client> {
  const url = `http://127.0.0.1:${port}`;
  return bounded(url, (ok, fail) => {
    const socket: Socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: room === undefined ? { user } : { user, room } });
    socket.on('message', onData);
    socket.once('connect', () => ok({ close: () => socket.disconnect() }));
    socket.once('connect_error', fail);
    return () => socket.disconnect();
  });
}

function bare(port: number, user: string, room: string | undefined, onData: OnData): Promise<Client> {
  const url = `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}${room === undefined ? '' : `&room=${encodeURIComponent(room)}`}`;
  return bounded(url, (ok, fail) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('message', (raw) => onData((JSON.parse(String(raw)) as { data: unknown }).data));
    ws.once('open', () => ok({ close: () => ws.terminate() }));
    ws.on('error', fail);
    return () => ws.terminate();
  });
}

export function connect(kind: Kind, port: number, user: string, room: string | undefined, onData: OnData): Promise<Client> {
  return kind === 'switchboard' ? switchboard(port, user, room, onData) : kind === 'socketio' ? socketio(port, user, room, onData) : bare(port, user, room, onData);
}
