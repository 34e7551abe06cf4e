/**
 * The Server-Sent Events side of a session (`GET /sse`): its `Transport`,
 * which writes the session's frames to an HTTP response as SSE events, and
 * the event id that lets an `EventSource` resume.
 *
 * The events (docs/sse.md):
 * - `message` frames are unnamed events (an `EventSource`'s `onmessage`),
 *   `data:` the frame's JSON, `id:` the stream's position after it;
 * - `welcome` is the first event; `subscribed` (the subscribe result of a
 *   channel of the query) and `refused` (why a channel was not subscribed)
 *   follow; the messages a welcome or a subscription recovered come after
 *   it as `message` events, one each, so the frames' `messages` are left out;
 * - any other frame is an event named after its `type` (`join`, `leave`,
 *   `disconnect`: then the response ends);
 * - keep-alives are comment lines, which nobody answers.
 *
 * SSE has one `Last-Event-ID` for the whole stream, but positions are per
 * channel: the id is every channel's position, `{channel: [offset, epoch]}`
 * as base64url JSON, channels without history left out.
 */
import type { ServerResponse } from 'node:http';
import {
  encodeMessage,
  isValidChannel,
  type Publication,
  type ServerFrame,
  type StreamPosition,
  type SubscribeResult,
} from '../../protocol/index.js';
import type { Outgoing, Transport } from '../core/session.js';

/** Every channel's position, as the event id carries it. */
export type Positions = Map<string, StreamPosition>;

/** Longest epoch accepted in an event id (as in `?epoch=`). */
const MAX_EPOCH = 64;

/**
 * One event as the stream's text: `event:` unless `name` is '' (an unnamed
 * event, an `EventSource`'s `onmessage`), `id:` unless `id` is '', `retry:`
 * (the client's reconnection delay, ms) when given, then one `data:` line:
 * the JSON text of a frame has no line breaks.
 */
export function sseEvent(name: string, data: string, id = '', retry?: number): string {
  return `${retry === undefined ? '' : `retry: ${retry}\n`}${name === '' ? '' : `event: ${name}\n`}${id === '' ? '' : `id: ${id}\n`}data: ${data}\n\n`;
}

/** The event id of `positions`: base64url JSON of `{channel: [offset, epoch]}`; '' when there is none. */
export function encodeEventId(positions: Positions): string {
  if (positions.size === 0) return '';
  const table: Record<string, [number, string]> = {};
  for (const [channel, { offset, epoch }] of positions) table[channel] = [offset, epoch];
  return Buffer.from(JSON.stringify(table)).toString('base64url');
}

/** The positions an event id carries; undefined when it is not one this node wrote. */
export function decodeEventId(id: string): Positions | undefined {
  let table: unknown;
  try {
    table = JSON.parse(Buffer.from(id, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof table !== 'object' || table === null || Array.isArray(table)) return undefined;
  const positions: Positions = new Map();
  for (const [channel, value] of Object.entries(table as Record<string, unknown>)) {
    if (!isValidChannel(channel) || !Array.isArray(value) || value.length !== 2) return undefined;
    const [offset, epoch] = value as unknown[];
    if (!Number.isSafeInteger(offset) || (offset as number) < 0 || typeof epoch !== 'string' || epoch.length > MAX_EPOCH) return undefined;
    positions.set(channel, { offset: offset as number, epoch });
  }
  return positions;
}

export class SseTransport implements Transport {
  /** The id of the next event carrying one, while `positions` did not change since it was built. */
  private id: string | undefined;
  private ended = false;
  /** Called once, at the session's first frame or its close, like the WebSocket transport's. */
  private handshakeDone: (() => void) | undefined;

  constructor(
    private readonly res: ServerResponse,
    /** Where each channel of the stream is: where it resumed, then what it was sent. */
    private readonly positions: Positions,
    /** The channels of the query, by the `id` of their subscribe reply (its index). */
    private readonly channels: readonly string[],
    handshakeDone: () => void,
  ) {
    this.handshakeDone = handshakeDone;
  }

  /** A frame of the session, as JSON text. */
  send(data: Buffer | string): void {
    const frame = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as ServerFrame;
    switch (frame.type) {
      case 'message':
        this.message(frame, typeof data === 'string' ? data : data.toString('utf8'));
        break;
      case 'welcome': {
        const { messages, ...welcome } = frame;
        // Epoch '' is a personal channel without history: no position to keep.
        const position = frame.epoch === '' ? undefined : { channel: frame.channel, offset: frame.offset, epoch: frame.epoch };
        this.recovered('welcome', welcome, position, messages);
        break;
      }
      case 'reply': {
        const channel = this.channels[frame.id];
        if (channel === undefined) break;
        if ('error' in frame) this.event('refused', JSON.stringify({ type: 'refused', channel, error: frame.error }));
        else this.subscribed(frame.result as SubscribeResult);
        break;
      }
      default:
        this.event(frame.type, JSON.stringify(frame));
    }
    this.done();
  }

  sendMessage(message: Outgoing): void {
    this.message(message.pub, message.text.toString('utf8'));
    this.done();
  }

  /** End the response: the `disconnect` event went first (see `Session.disconnect`). */
  close(): void {
    this.end();
    this.done();
  }

  /** An SSE comment: proxies see traffic, the client has nothing to answer. */
  keepAlive(): void {
    this.write(': ping\n\n');
  }

  /** Bytes written to the response and not yet taken by the network. */
  get bufferedAmount(): number {
    return this.res.writableLength;
  }

  /** The response is over (the client left, or the session closed it). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.res.end();
  }

  /** The handshake is over: the first frame went out, or the session closed before it. */
  done(): void {
    const done = this.handshakeDone;
    if (done === undefined) return;
    this.handshakeDone = undefined;
    done();
  }

  private subscribed(result: SubscribeResult): void {
    const { messages, ...rest } = result;
    const position = result.offset !== undefined && result.epoch !== undefined ? { channel: result.channel, offset: result.offset, epoch: result.epoch } : undefined;
    this.recovered('subscribed', { type: 'subscribed', ...rest }, position, messages);
  }

  /**
   * The event of a welcome or subscription, then each message it recovered:
   * the channel's position moves to the result's once those are written
   * (with none, at once, so that the event's id carries it).
   */
  private recovered(name: string, body: object, position: { channel: string; offset: number; epoch: string } | undefined, messages: readonly Publication[]): void {
    if (position && messages.length === 0) this.move(position.channel, position.offset, position.epoch);
    this.event(name, JSON.stringify(body), true);
    for (const pub of messages) this.message(pub, encodeMessage(pub));
    if (position && messages.length > 0) this.move(position.channel, position.offset, position.epoch);
  }

  /** A `message` frame: an unnamed event whose id is the position after it. */
  private message(pub: Publication, text: string): void {
    if (pub.offset !== undefined && pub.epoch !== undefined) this.move(pub.channel, pub.offset, pub.epoch);
    this.write(sseEvent('', text, this.eventId()));
  }

  private move(channel: string, offset: number, epoch: string): void {
    this.positions.set(channel, { offset, epoch });
    this.id = undefined;
  }

  private eventId(): string {
    return (this.id ??= encodeEventId(this.positions));
  }

  /** A named event; `withId`: it carries the stream's position too. */
  private event(name: string, json: string, withId = false): void {
    this.write(sseEvent(name, json, withId ? this.eventId() : ''));
  }

  private write(text: string): void {
    if (!this.ended) this.res.write(text);
  }
}
