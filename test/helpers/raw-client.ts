/**
 * A raw protocol client for tests: a `ws` socket that records every frame
 * and lets a test wait for the one it expects. No reconnect logic: the SDK
 * has its own tests.
 */
import WebSocket from 'ws';
import type { ServerFrame } from '../../src/protocol/index.js';
import { sleep } from './wait.js';

export interface Closed {
  code: number;
  reason: string;
}

export class RawClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<Closed>;
  private nextId = 1;
  private pongs = false;
  private waiters: Array<{ test: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('server sent a binary frame');
      const frame = JSON.parse(String(data)) as ServerFrame;
      this.frames.push(frame);
      if (frame.type === 'ping' && this.pongs) this.send({ type: 'pong' });
      this.waiters = this.waiters.filter((w) => (w.test(frame) ? (w.resolve(frame), false) : true));
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  /** Open a connection; rejects with the HTTP status when the upgrade is refused. */
  static open(url: string, opts: WebSocket.ClientOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts);
      const client = new RawClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += String(c)));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  /** Open and wait for `welcome`. */
  static async connect(url: string, opts: WebSocket.ClientOptions = {}): Promise<RawClient> {
    const c = await RawClient.open(url, opts);
    await c.next((f) => f.type === 'welcome');
    return c;
  }

  get welcome(): Extract<ServerFrame, { type: 'welcome' }> {
    const w = this.frames.find((f) => f.type === 'welcome');
    if (!w || w.type !== 'welcome') throw new Error('no welcome yet');
    return w;
  }

  /** Messages received so far (live `message` frames), optionally of one channel. */
  messages(channel?: string): Array<Extract<ServerFrame, { type: 'message' }>> {
    return this.frames.filter(
      (f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message' && (!channel || f.channel === channel),
    );
  }

  /** The first frame (already received or future) that passes `test`. */
  next(test: (f: ServerFrame) => boolean, timeoutMs = 5000): Promise<ServerFrame> {
    const seen = this.frames.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** Wait until `count` frames pass `test`. */
  async waitFor(test: (f: ServerFrame) => boolean, count: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.filter(test).length < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.frames.filter(test).length} of ${count} frames arrived`);
      await sleep(10);
    }
  }

  /** Answer the server's pings from now on, as the SDK does, so that a quiet connection stays open. */
  answerPings(): void {
    this.pongs = true;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Send a frame with a fresh id and wait for its reply. */
  async request(frame: Record<string, unknown>): Promise<Extract<ServerFrame, { type: 'reply' }>> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return (await this.next((f) => f.type === 'reply' && f.id === id)) as Extract<ServerFrame, { type: 'reply' }>;
  }

  close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}
