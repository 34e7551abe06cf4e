/**
 * `SwitchboardApi`: the server API (SPEC "Server API") as typed calls for a
 * business service. Every publish carries an idempotency key — the caller's
 * or a fresh UUID — so that retrying one whose answer was lost (a node died,
 * a timeout) stores it once; reads and `disconnect` are safe to repeat as is.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, type ErrorBody, type Publication, type PublishResult } from '../protocol/index.js';
import { array, bool, num, object, position, str, type Json } from './decode.js';
import { isErrorCode } from './errors.js';
import { resolveApiOptions, type SwitchboardApiOptions } from './options.js';
import { RequestRunner, type ApiAnswer } from './request.js';
import type {
  BroadcastReceipt,
  CallOptions,
  ClusterNode,
  DisconnectOptions,
  HistoryPage,
  HistoryQuery,
  PresenceMember,
  PublishOptions,
  PublishReceipt,
  UserRoute,
  UserStatus,
} from './types.js';

const seg = encodeURIComponent;

export class SwitchboardApi {
  private readonly runner: RequestRunner;

  /** Throws `TypeError` for bad options (no base URL, a negative timeout…). */
  constructor(options: SwitchboardApiOptions) {
    this.runner = new RequestRunner(resolveApiOptions(options));
  }

  /** The node the next call goes to first (it moves on when a node fails). */
  get baseUrl(): string {
    return this.runner.baseUrl;
  }

  /** Publish `data` on `channel`. Retried within the deadline; stored once thanks to the idempotency key. */
  async publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    return this.publishTo('/api/publish', { channel, data }, options);
  }

  /** Send `data` to every connection of `user` (their personal channel). Retried like `publish`. */
  async send(user: string, data: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    return this.publishTo('/api/send', { user, data }, options);
  }

  /** Publish `data` on 1–1000 channels; each has its own result. The key applies per channel. */
  async broadcast(channels: readonly string[], data: unknown, options: PublishOptions = {}): Promise<BroadcastReceipt> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    const answer = await this.post('/api/broadcast', { channels, data, idempotencyKey }, true, options.signal);
    const results = array(object(answer.body, 'answer').results, 'results').map((r, i): PublishResult | { error: ErrorBody } => {
      const o = object(r, `results[${i}]`);
      if (o.error === undefined) return position(o, `results[${i}]`);
      const e = object(o.error, `results[${i}].error`);
      const code = isErrorCode(e.code) ? e.code : ErrorCode.Internal;
      return { error: { code, message: str(e.message, `results[${i}].error.message`) } };
    });
    return { results, idempotencyKey };
  }

  /** Whether `user` is connected anywhere, and where. */
  async user(user: string, options: CallOptions = {}): Promise<UserStatus> {
    const o = object((await this.get(`/api/users/${seg(user)}`, options.signal)).body, 'answer');
    return {
      online: bool(o.online, 'online'),
      sessions: array(o.sessions, 'sessions').map((s, i) => {
        const e = object(s, `sessions[${i}]`);
        return { session: str(e.session, 'session'), node: str(e.node, 'node') };
      }),
    };
  }

  /** Who is on `channel` (its namespace must keep presence, else `not_found`). */
  async presence(channel: string, options: CallOptions = {}): Promise<PresenceMember[]> {
    const o = object((await this.get(`/api/presence/${seg(channel)}`, options.signal)).body, 'answer');
    return array(o.members, 'members').map((m, i) => {
      const e = object(m, `members[${i}]`);
      return { user: str(e.user, 'user'), session: str(e.session, 'session'), node: str(e.node, 'node') };
    });
  }

  /** Stored messages of `channel` (its namespace must keep history, else `not_found`). */
  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const params = new URLSearchParams();
    if (query.since !== undefined) params.set('since', String(query.since));
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const qs = params.size > 0 ? `?${params.toString()}` : '';
    const o = object((await this.get(`/api/history/${seg(channel)}${qs}`, query.signal)).body, 'answer');
    return {
      offset: num(o.offset, 'offset'),
      epoch: str(o.epoch, 'epoch'),
      messages: array(o.messages, 'messages').map((m, i) => {
        const e = object(m, `messages[${i}]`);
        str(e.channel, `messages[${i}].channel`);
        return e as unknown as Publication;
      }),
    };
  }

  /**
   * Close every connection of `user` on every node; resolves with how many.
   * Retried: closing twice closes nothing more.
   */
  async disconnect(user: string, options: DisconnectOptions = {}): Promise<number> {
    const body: Json = { user };
    if (options.code !== undefined) body.code = options.code;
    if (options.reason !== undefined) body.reason = options.reason;
    const o = object((await this.post('/api/disconnect', body, true, options.signal)).body, 'answer');
    return num(o.sessions, 'sessions');
  }

  /** Every live node of the cluster. */
  async nodes(options: CallOptions = {}): Promise<ClusterNode[]> {
    const o = object((await this.get('/api/nodes', options.signal)).body, 'answer');
    return array(o.nodes, 'nodes').map((n, i) => {
      const e = object(n, `nodes[${i}]`);
      return {
        id: str(e.id, 'id'),
        address: str(e.address, 'address'),
        url: str(e.url, 'url'),
        routing: str(e.routing, 'routing'),
        connections: num(e.connections, 'connections'),
        subscriptions: num(e.subscriptions, 'subscriptions'),
        uptime: num(e.uptime, 'uptime'),
        ready: bool(e.ready, 'ready'),
        draining: bool(e.draining, 'draining'),
      };
    });
  }

  /** The node `user` should connect to and its WebSocket URL (the owner under hash-ring routing). */
  async route(user: string, options: CallOptions = {}): Promise<UserRoute> {
    const o = object((await this.get(`/api/route?user=${seg(user)}`, options.signal)).body, 'answer');
    return { user: str(o.user, 'user'), node: str(o.node, 'node'), url: str(o.url, 'url') };
  }

  private async publishTo(path: string, body: Json, options: PublishOptions): Promise<PublishReceipt> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    const answer = await this.post(path, { ...body, idempotencyKey }, true, options.signal);
    return {
      ...position(answer.body, 'answer'),
      idempotencyKey,
      replayed: answer.headers.get('idempotent-replayed') === 'true',
    };
  }

  private get(path: string, signal: AbortSignal | undefined): Promise<ApiAnswer> {
    return this.runner.run({ method: 'GET', path, retryable: true, signal });
  }

  private post(path: string, body: Json, retryable: boolean, signal: AbortSignal | undefined): Promise<ApiAnswer> {
    return this.runner.run({ method: 'POST', path, body, retryable, signal });
  }
}
