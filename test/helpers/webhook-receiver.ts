/**
 * A backend for webhook tests: a plain Node HTTP server on a free loopback
 * port that checks each request's signature with the server SDK, records
 * what arrived, and answers 200, or the status a test sets (to play a
 * backend that fails). `down()` closes the port and `up()` opens it again,
 * the same one, to play a backend that is not there at all.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseWebhook, WEBHOOK_SIGNATURE_HEADER, type WebhookEvent } from '../../src/server-sdk/index.js';

/** Fast dead-node detection for webhook tests: the node flags, and the detection time they give (heartbeat × beats). */
export const FAST_DETECTION = { args: ['--heartbeat', '1', '--dead-after-beats', '2'], ms: 2000 } as const;
/** Beyond the detection time: the survivor's sweep, taking the released lease over, one poll and the request. */
export const DELIVERY_MARGIN_MS = 1500;

export interface ReceivedRequest {
  /** When the request's body had arrived (ms since the epoch). */
  at: number;
  /** The status this receiver answered. */
  status: number;
  /** Whether the signature matched the raw body. */
  signed: boolean;
  /** The raw `X-Switchboard-Signature` header. */
  header: string | undefined;
  events: WebhookEvent[];
}

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** What to answer a well-signed request with (200 unless a test plays an outage). */
  status = 200;

  private constructor(
    private readonly server: Server,
    readonly secret: string,
  ) {}

  /** The port, kept across `down()` and `up()`. */
  private port = 0;

  static async start(secret: string): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server, secret);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const header = req.headers[WEBHOOK_SIGNATURE_HEADER];
        let events: WebhookEvent[] = [];
        let signed = true;
        try {
          events = parseWebhook(raw, header, secret);
        } catch {
          signed = false;
        }
        const status = signed ? receiver.status : 401;
        receiver.requests.push({ at: Date.now(), status, signed, header: typeof header === 'string' ? header : undefined, events });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
      });
    });
    await receiver.listen(0);
    receiver.port = (server.address() as AddressInfo).port;
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  /** Stop listening and cut the open connections: requests fail to connect until `up()`. */
  async down(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Listen again on the same port after `down()`. */
  async up(): Promise<void> {
    await this.listen(this.port);
  }

  /** The events of requests answered 2xx, in arrival order, repeats included. */
  accepted(): WebhookEvent[] {
    return this.requests.filter((r) => r.status === 200).flatMap((r) => r.events);
  }

  /** What the backend keeps for `user` after dropping repeated ids: the types in order. */
  typesOf(user: string): string[] {
    const seen = new Set<string>();
    const types: string[] = [];
    for (const e of this.accepted()) {
      if (e.user !== user || seen.has(e.id)) continue;
      seen.add(e.id);
      types.push(e.type);
    }
    return types;
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.down();
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }
}
