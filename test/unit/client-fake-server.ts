/**
 * A scripted Switchboard server for the client SDK's unit tests: a real
 * `ws` WebSocketServer whose connections the test drives frame by frame, so
 * the client's state machine can be tested without the real node.
 */
import { vi } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Publication, ServerFrame, WelcomeFrame } from '../../src/protocol/index.js';

export type Json = Record<string, unknown>;

export class FakeConnection {
  readonly frames: Json[] = [];
  readonly url: URL;
  closed: { code: number; reason: string } | undefined;
  private seen = 0;

  constructor(
    readonly ws: WebSocket,
    req: IncomingMessage,
  ) {
    this.url = new URL(req.url ?? '/', 'ws://localhost');
    ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as Json));
    ws.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  send(frame: ServerFrame | Json): void {
    this.ws.send(JSON.stringify(frame));
  }

  welcome(over: Partial<WelcomeFrame> = {}): WelcomeFrame {
    const user = this.url.searchParams.get('user') ?? 'alice';
    const w: WelcomeFrame = {
      type: 'welcome',
      session: `s-${Math.random().toString(36).slice(2, 8)}`,
      node: 'fake-node',
      user,
      channel: `user:${user}`,
      offset: 0,
      epoch: 'e1',
      recovered: true,
      messages: [],
      ping: 25,
      ...over,
    };
    this.send(w);
    return w;
  }

  message(pub: Publication): void {
    this.send({ type: 'message', ...pub });
  }

  /** The next client frame (after those already taken) matching `match`. */
  async next(match: (f: Json) => boolean = () => true, timeout = 2000): Promise<Json> {
    return vi.waitUntil(
      () => {
        for (let i = this.seen; i < this.frames.length; i++) {
          const f = this.frames[i] as Json;
          if (match(f)) {
            this.seen = i + 1;
            return f;
          }
        }
        return undefined;
      },
      { timeout, interval: 5 },
    );
  }

  nextOfType(type: string, timeout?: number): Promise<Json> {
    return this.next((f) => f.type === type, timeout);
  }

  /** Answer the request `frame` with a result. */
  reply(frame: Json, result: unknown): void {
    this.send({ type: 'reply', id: frame.id as number, result });
  }

  /** Drop the TCP connection without a close frame (the client sees 1006). */
  kill(): void {
    this.ws.terminate();
  }
}

export interface FakeServerOptions {
  /** HTTP status to refuse upgrades with (e.g. 401), or 0 to accept. */
  reject?: () => number;
  /** Called with every accepted connection, e.g. to script an answer. */
  onConnection?: (conn: FakeConnection) => void;
}

export class FakeServer {
  readonly connections: FakeConnection[] = [];
  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
    /** Upgrade requests seen, refused ones included. */
    readonly attempts: URL[],
  ) {}

  static async start(options: FakeServerOptions = {}): Promise<FakeServer> {
    const attempts: URL[] = [];
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      handleProtocols: (protocols) => (protocols.has('switchboard.v1') ? 'switchboard.v1' : false),
      verifyClient: (info, done) => {
        attempts.push(new URL(info.req.url ?? '/', 'ws://localhost'));
        const status = options.reject?.() ?? 0;
        if (status) done(false, status);
        else done(true);
      },
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    const address = wss.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const server = new FakeServer(wss, port, attempts);
    wss.on('connection', (ws, req) => {
      const conn = new FakeConnection(ws, req);
      server.connections.push(conn);
      options.onConnection?.(conn);
    });
    return server;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** The `n`th connection (0-based), once it exists. */
  connection(n: number, timeout = 3000): Promise<FakeConnection> {
    return vi.waitUntil(() => this.connections[n], { timeout, interval: 5 });
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
