/**
 * A Server-Sent Events client over plain `node:http`, parsing the stream as
 * an `EventSource` does (the HTML standard's "interpret an event stream"):
 * `event:`, `id:` (kept across events, as `lastEventId`), `data:` lines,
 * `retry:` (the reconnection delay asked for), comments. It does not reconnect by itself: a test reconnects with
 * `lastEventId`, as a browser would, when it chooses. Every wait is bounded.
 */
import http from 'node:http';
import { within } from '../../src/shared/time.js';

export interface SseEvent {
  /** `message` when the event had no `event:` line. */
  event: string;
  data: string;
  /** The stream's last event id after this event. */
  lastEventId: string;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  /** Comment lines seen (keep-alives), without the colon. */
  readonly comments: string[] = [];
  lastEventId = '';
  /** The last `retry:` the stream sent (ms), as an `EventSource` would take it; undefined before any. */
  retry: number | undefined;
  ended = false;
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly res: http.IncomingMessage,
    private readonly req: http.ClientRequest,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('end', () => this.finish());
    res.on('close', () => this.finish());
    res.on('error', () => this.finish());
  }

  /** Open a stream; resolves with the client once the response headers arrive (any status: see `status`). */
  static open(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<SseClient> {
    return within(
      new Promise<SseClient>((resolve, reject) => {
        const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => resolve(new SseClient(res, req)));
        req.on('error', reject);
      }),
      timeoutMs,
      `opening ${url}`,
    );
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** The whole body, for a refusal (a JSON error). */
  async body(timeoutMs = 5_000): Promise<string> {
    await this.waitFor(() => this.ended, timeoutMs, 'the end of the response');
    return this.buffer;
  }

  /** The events named `name` so far, their data parsed as JSON. */
  parsed(name = 'message'): Array<Record<string, unknown>> {
    return this.events.filter((e) => e.event === name).map((e) => JSON.parse(e.data) as Record<string, unknown>);
  }

  /** Resolves once `check()` is true, re-checked at each event; rejects after `timeoutMs`. */
  async waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const wait = async (): Promise<void> => {
      while (!check()) {
        if (this.ended && !check()) throw new Error(`the stream ended before ${what}`);
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    };
    await within(wait(), timeoutMs, `waiting for ${what}`);
  }

  /** Resolves once `count` events named `name` arrived in all. */
  async count(name: string, count: number, timeoutMs = 10_000): Promise<Array<Record<string, unknown>>> {
    await this.waitFor(() => this.parsed(name).length >= count, timeoutMs, `${count} ${name} events`);
    return this.parsed(name);
  }

  /** Drop the connection, as a network cut would. */
  close(): void {
    this.req.destroy();
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private feed(chunk: string): void {
    if (this.status !== 200) {
      this.buffer += chunk;
      return;
    }
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
    this.wake();
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retry = Number(value);
  }

  private dispatch(): void {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = '';
    if (data.length === 0) return;
    this.events.push({ event: event === '' ? 'message' : event, data: data.join('\n'), lastEventId: this.lastEventId });
  }
}
