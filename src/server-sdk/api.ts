/**
 * `SwitchboardApi`: the server API (SPEC "Server API") as typed calls for a
 * business service. Every publish carries an idempotency key — the caller's
 * or a fresh UUID — so that retrying one whose answer was lost (a node died,
 * a timeout) stores it once; reads and `disconnect` are safe to repeat as is.
 */
import { randomUUID } from 'node:crypto';
import {
  REPLAYED_HEADER,
  type BroadcastRequest,
  type DisconnectRequest,
  type PublishRequest,
  type SendRequest,
} from '../protocol/index.js';
import {
  broadcastAnswer,
  disconnectAnswer,
  historyAnswer,
  nodesAnswer,
  presenceAnswer,
  publishAnswer,
  routeAnswer,
  userAnswer,
} from './decode.js';
import { resolveApiOptions, type SwitchboardApiOptions } from './options.js';
import { RequestRunner, type HttpAnswer } from './request.js';
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

/** What a call may send. */
type RequestBody = PublishRequest | SendRequest | BroadcastRequest | DisconnectRequest;

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
    return { results: broadcastAnswer(answer.body, 'answer').results, idempotencyKey };
  }

  /** Whether `user` is connected anywhere, and where. */
  async user(user: string, options: CallOptions = {}): Promise<UserStatus> {
    return userAnswer((await this.get(`/api/users/${seg(user)}`, options.signal)).body, 'answer');
  }

  /** Who is on `channel` (its namespace must keep presence, else `not_found`). */
  async presence(channel: string, options: CallOptions = {}): Promise<PresenceMember[]> {
    return presenceAnswer((await this.get(`/api/presence/${seg(channel)}`, options.signal)).body, 'answer').members;
  }

  /** Stored messages of `channel` (its namespace must keep history, else `not_found`). */
  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const params = new URLSearchParams();
    if (query.since !== undefined) params.set('since', String(query.since));
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const qs = params.size > 0 ? `?${params.toString()}` : '';
    return historyAnswer((await this.get(`/api/history/${seg(channel)}${qs}`, query.signal)).body, 'answer');
  }

  /**
   * Close every connection of `user` on every node; resolves with how many.
   * Retried: closing twice closes nothing more.
   */
  async disconnect(user: string, options: DisconnectOptions = {}): Promise<number> {
    const body: DisconnectRequest = { user };
    if (options.code !== undefined) body.code = options.code;
    if (options.reason !== undefined) body.reason = options.reason;
    return disconnectAnswer((await this.post('/api/disconnect', body, true, options.signal)).body, 'answer').sessions;
  }

  /** Every live node of the cluster. */
  async nodes(options: CallOptions = {}): Promise<ClusterNode[]> {
    return nodesAnswer((await this.get('/api/nodes', options.signal)).body, 'answer').nodes;
  }

  /** The node `user` should connect to and its WebSocket URL (the owner under hash-ring routing). */
  async route(user: string, options: CallOptions = {}): Promise<UserRoute> {
    return routeAnswer((await this.get(`/api/route?user=${seg(user)}`, options.signal)).body, 'answer');
  }

  private async publishTo(
    path: string,
    body: Omit<PublishRequest, 'idempotencyKey'> | Omit<SendRequest, 'idempotencyKey'>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    const answer = await this.post(path, { ...body, idempotencyKey }, true, options.signal);
    return {
      ...publishAnswer(answer.body, 'answer'),
      idempotencyKey,
      replayed: answer.headers.get(REPLAYED_HEADER) === 'true',
    };
  }

  private get(path: string, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    return this.runner.run({ method: 'GET', path, retryable: true, signal });
  }

  private post(path: string, body: RequestBody, retryable: boolean, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    return this.runner.run({ method: 'POST', path, body, retryable, signal });
  }
}
