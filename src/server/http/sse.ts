/**
 * The Server-Sent Events endpoint `GET /sse?channel=…&channel=…` (SPEC
 * "Other ways in"), for clients and networks without WebSocket: the same
 * limits, admission and identity as `/ws` (admit.ts), then a `Session`
 * whose transport writes events to the response (sse-transport.ts). The
 * session has the personal channel and the channels of the query, each
 * subscribed as a client's `subscribe` frame would be; the client sends
 * nothing afterwards. An `EventSource` that reconnects sends the last event
 * id it saw, and every channel recovers from the position that id carries.
 *
 * An `EventSource` gives up for good on any status but 200, so a refusal
 * that passes (503, 429) is answered to one (`Accept: text/event-stream`)
 * as a stream that ends at once: a `retry:` delay and the `disconnect`
 * event a session that ends would send, after which it reconnects by
 * itself. Other clients, and every other refusal, get the JSON error.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloseCode, type DisconnectFrame, ErrorCode, isValidChannel, personalChannel, toErrorBody } from '../../protocol/index.js';
import { type Door, type EndpointContext, parseDevice, Refusal, sessionIdentity } from './admit.js';
import { dropIdleTimer } from './harden.js';
import { sendError } from './respond.js';
import { decodeEventId, SseTransport, sseEvent, type Positions } from './sse-transport.js';

/** What a stream asks for: its channels, where it resumes, and which device it is. */
interface StreamRequest {
  channels: string[];
  resume: Positions | undefined;
  device: string;
}

/** Headers of a stream: no caching, and no buffering by proxies (nginx reads `X-Accel-Buffering`). */
const STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const;

/** Reconnection delay of a refused stream without `Retry-After` (draining: the load balancer picks another node). */
const REFUSED_RETRY_MS = 1000;

export class SseEndpoint {
  constructor(
    private readonly ctx: EndpointContext,
    /** The limits, admission and identity this endpoint shares with `/ws`. */
    private readonly door: Door,
  ) {}

  /**
   * Answer `GET /sse`: a stream, or a refusal as JSON with its HTTP status
   * (`Retry-After` when the client may retry here); a refusal that passes,
   * to a client that takes an event stream, as a stream that ends at once.
   */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.open(req, res, url).catch((err: unknown) => {
      const refusal = this.door.refusal(err, 'event stream');
      if (res.headersSent) return void res.end();
      if (transient(refusal) && acceptsEventStream(req)) return refuseStream(res, refusal);
      if (refusal.retryAfter !== undefined) res.setHeader('retry-after', String(refusal.retryAfter));
      sendError(res, { code: refusal.code, message: refusal.message }, refusal.status);
    });
  }

  private async open(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'GET') throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'the event stream is GET /sse');
    const { identity, request, done } = await this.door.enter(req, url, (u) => this.parse(req, u));
    if (req.socket.destroyed) return done();
    const { gateway, frames, refreshHook } = this.ctx;
    const personal = personalChannel(identity.user);
    // Only the positions of this stream's channels are kept (an id from another user or another query names others).
    const positions: Positions = new Map();
    for (const channel of [personal, ...request.channels]) {
      const at = request.resume?.get(channel);
      if (at) positions.set(channel, at);
    }
    res.writeHead(200, STREAM_HEADERS);
    res.flushHeaders();
    // The stream's own keep-alives (every --ping seconds) and the buffer limit say whether it lives, not an idle timer.
    req.socket.setTimeout(0);
    dropIdleTimer(req.socket);
    const transport = new SseTransport(res, positions, request.channels, done);
    const session = gateway.open({ ...sessionIdentity(identity), since: positions.get(personal), device: request.device, transport });
    res.once('close', () => {
      this.door.leave(req.socket);
      transport.end();
      transport.done();
      session.gone();
    });
    if (identity.meta !== undefined) refreshHook?.schedule(session, Date.now());
    request.channels.forEach((channel, index) => {
      // The reply's id is the channel's place in the query: the transport makes it a `subscribed` or `refused` event.
      frames
        .subscribe(session, channel, positions.get(channel), (result) => session.send({ type: 'reply', id: index, result }))
        .catch((err: unknown) => session.send({ type: 'reply', id: index, error: toErrorBody(err) }));
    });
  }

  /** The stream's channels (1-255 characters of the channel alphabet, no more than `--max-subscriptions`), resume point and device. */
  private parse(req: IncomingMessage, url: URL): StreamRequest {
    const channels = url.searchParams.getAll('channel');
    const { maxSubscriptions } = this.ctx.options.limits;
    if (channels.length > maxSubscriptions) {
      throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', `more than ${maxSubscriptions} channels (--max-subscriptions)`);
    }
    const bad = channels.find((c) => !isValidChannel(c));
    if (bad !== undefined) throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'channel name must be 1-255 characters of A-Za-z0-9_-.:@=,');
    if (new Set(channels).size !== channels.length) throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'a channel is named twice');
    // EventSource sends the header when it reconnects; `?lastEventId=` is for a page that starts a new one where an old one stopped.
    const header = req.headers['last-event-id'];
    const id = typeof header === 'string' && header !== '' ? header : url.searchParams.get('lastEventId');
    let resume: Positions | undefined;
    if (id !== null && id !== '') {
      resume = decodeEventId(id);
      if (!resume) throw new Refusal(400, ErrorCode.BadRequest, 'bad_request', 'Last-Event-ID is not an event id of this stream');
    }
    return { channels, resume, device: parseDevice(url) };
  }
}

/** A refusal the client may retry (503, 429), as against one it must not (400, 401, 403 …). */
function transient(refusal: Refusal): boolean {
  return refusal.status === 503 || refusal.status === 429;
}

/** Whether the client takes an event stream (an `EventSource` always sends `Accept: text/event-stream`). */
function acceptsEventStream(req: IncomingMessage): boolean {
  return req.headers.accept?.toLowerCase().includes('text/event-stream') ?? false;
}

/**
 * A transient refusal as a 200 stream that ends at once: `retry:` (the
 * refusal's `Retry-After` in ms, else 1 s), then the `disconnect` event of a
 * session that ends, with a reconnecting close code: 4129 for a 429, 4100
 * for a 503 (the node cannot take the stream now: come back, maybe
 * elsewhere).
 */
function refuseStream(res: ServerResponse, refusal: Refusal): void {
  const code = refusal.status === 429 ? CloseCode.RateLimited : CloseCode.Draining;
  const frame: DisconnectFrame = { type: 'disconnect', code, reason: refusal.message, reconnect: true };
  const retry = refusal.retryAfter === undefined ? REFUSED_RETRY_MS : refusal.retryAfter * 1000;
  res.writeHead(200, STREAM_HEADERS);
  res.end(sseEvent(frame.type, JSON.stringify(frame), '', retry));
}
