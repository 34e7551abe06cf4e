// The benchmark's WebSocket clients: `Tally` counts every copy received,
// `BenchClient` speaks the protocol; connecting follows `/api/route` and 4102 redirects.
import WebSocket from 'ws';
import type { DisconnectFrame, ServerFrame } from '../../src/protocol/index.js';
import { MAX_HOPS, WS_TIMEOUT_MS } from './settings.js';
import { type Payload, userName } from './traffic.js';
import { getJson } from '../lib/http.js';
import type { BenchNode } from '../lib/nodes.js';

/** Every copy every client of a run received, by (client, publication). */
export class Tally {
  received = 0;
  /** `copies[client × slots + n]`. */
  readonly copies: Uint16Array;
  /** Publish-to-delivery, ms, of publications n ≥ `measureFrom`. */
  latencies: number[] = [];

  constructor(
    readonly clients: number,
    readonly slots: number,
    readonly measureFrom: number,
  ) {
    this.copies = new Uint16Array(clients * slots);
  }

  record(client: number, p: Payload, at: number): void {
    this.received++;
    if (!Number.isInteger(p.n) || p.n < 0 || p.n >= this.slots) return;
    const i = client * this.slots + p.n;
    if (this.copies[i]! < 0xffff) this.copies[i]!++;
    if (p.n >= this.measureFrom) this.latencies.push(at - p.t);
  }

  got(client: number, n: number): number {
    return this.copies[client * this.slots + n]!;
  }
}

class Moved extends Error {
  constructor(readonly url: string) {
    super(`moved to ${url}`);
  }
}

/** A lean protocol client: counts messages into a `Tally`, answers pings, keeps `disconnect` frames. */
export class BenchClient {
  node = '';
  readonly disconnects: DisconnectFrame[] = [];
  onDisconnect: ((f: DisconnectFrame) => void) | undefined;
  private replies = new Map<number, (f: Extract<ServerFrame, { type: 'reply' }>) => void>();
  private nextId = 1;

  private constructor(
    readonly ws: WebSocket,
    readonly index: number,
    private readonly tally: Tally | undefined,
  ) {}

  /** Open and wait for `welcome`; a 4102 instead rejects with `Moved`. */
  static connect(url: string, index: number, tally?: Tally): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      const client = new BenchClient(ws, index, tally);
      let settled = false;
      const settle = (err: Error | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          ws.terminate();
          reject(err);
        } else resolve(client);
      };
      const timer = setTimeout(() => settle(new Error(`${url}: no welcome in ${WS_TIMEOUT_MS} ms`)), WS_TIMEOUT_MS);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as ServerFrame;
        if (f.type === 'welcome') {
          client.node = f.node;
          settle(undefined);
        } else if (f.type === 'disconnect' && !settled) {
          settle(f.code === 4102 && f.url ? new Moved(f.url) : new Error(`${url}: closed before welcome: ${f.code} ${f.reason}`));
        } else client.handle(f);
      });
      ws.on('unexpected-response', (_req, res) => settle(new Error(`${url}: HTTP ${res.statusCode}`)));
      ws.on('error', (err) => settle(err));
      ws.on('close', (code) => settle(new Error(`${url}: closed with ${code} before welcome`)));
    });
  }

  private handle(f: ServerFrame): void {
    switch (f.type) {
      case 'message':
        this.tally?.record(this.index, f.data as Payload, performance.now());
        break;
      case 'reply':
        this.replies.get(f.id)?.(f);
        this.replies.delete(f.id);
        break;
      case 'ping':
        this.ws.send('{"type":"pong"}');
        break;
      case 'disconnect':
        this.disconnects.push(f);
        this.onDisconnect?.(f);
        break;
      default:
        break;
    }
  }

  async subscribe(channel: string): Promise<void> {
    const id = this.nextId++;
    const reply = await new Promise<Extract<ServerFrame, { type: 'reply' }>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscribe ${channel}: no reply in ${WS_TIMEOUT_MS} ms`)), WS_TIMEOUT_MS);
      this.replies.set(id, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(JSON.stringify({ type: 'subscribe', id, channel }));
    });
    if ('error' in reply) throw new Error(`subscribe ${channel}: ${JSON.stringify(reply.error)}`);
  }

  close(): void {
    this.ws.terminate();
  }
}

export const wsUrl = (port: number, user: number): string => `ws://127.0.0.1:${port}/ws?user=${userName(user)}`;

export function withUser(url: string, user: number): string {
  const u = new URL(url);
  u.searchParams.set('user', userName(user));
  return u.toString();
}

/** Where `/api/route` on `node` sends `user`. */
export async function routeUrl(node: BenchNode, user: number): Promise<string> {
  const r = await getJson<{ url: string }>(node.port, `/api/route?user=${userName(user)}`);
  return withUser(r.url, user);
}

/** Connect, following up to `MAX_HOPS` 4102 redirects. */
export async function connectFollowing(url: string, user: number, tally?: Tally): Promise<BenchClient> {
  let target = url;
  for (let hop = 0; ; hop++) {
    try {
      return await BenchClient.connect(target, user, tally);
    } catch (err) {
      if (!(err instanceof Moved) || hop >= MAX_HOPS) throw err;
      target = withUser(err.url, user);
    }
  }
}
