/**
 * `SwitchboardApi`: the server API (SPEC "Server API") as typed calls for a
 * business service. Every publish carries an idempotency key — the caller's
 * or a fresh UUID — so that retrying one whose answer was lost (a node died,
 * a timeout) stores it once; reads and `disconnect` are safe to repeat as is.
 */
import { randomUUID } from 'node:crypto';
import {
  REPLAYED_HEADER,
  type BatchRequest,
  type BroadcastRequest,
  type DisconnectRequest,
  type PublishRequest,
  type SendRequest,
} from '../protocol/index.js';
import {
  batchAnswer,
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
import { Batcher, type KeyedCommand, type Settled } from './batcher.js';
import { RequestRunner, type HttpAnswer } from './request.js';
import type {
  BatchCommand,
  BatchReceipt,
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
type RequestBody = PublishRequest | SendRequest | BroadcastRequest | BatchRequest | DisconnectRequest;

const seg = encodeURIComponent;

export class SwitchboardApi {
  private readonly runner: RequestRunner;
  private readonly batcher: Batcher;

  /** Throws `TypeError` for bad options (no base URL, a negative timeout…). */
  constructor(options: SwitchboardApiOptions) {
    const resolved = resolveApiOptions(options);
    this.runner = new RequestRunner(resolved);
    this.batcher = new Batcher(
      resolved.maxInFlight,
      (command, signal) => this.publishOne(command, signal),
      async (commands) => batchAnswer((await this.post('/api/batch', { commands }, true, undefined)).body, 'answer').results,
    );
  }

  /** The node the next call goes to first (it moves on when a node fails). */
  get baseUrl(): string {
    return this.runner.baseUrl;
  }

  /**
   * Publish `data` on `channel`. Retried within the deadline; stored once
   * thanks to the idempotency key. Past `maxInFlight` calls under way, it
   * waits and leaves with others in one batch.
   */
  async publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    return receipt(await this.batcher.run({ publish: { channel, data, idempotencyKey } }, options.signal), idempotencyKey);
  }

  /** Send `data` to every connection of `user` (their personal channel). Retried and batched like `publish`. */
  async send(user: string, data: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    return receipt(await this.batcher.run({ send: { user, data, idempotencyKey } }, options.signal), idempotencyKey);
  }

  /**
   * Run 1–1000 publish and send commands in one request: in order per
   * channel, each with its own outcome (a failed one does not stop the
   * others). Commands without an idempotency key get a fresh UUID, so the
   * whole batch is retried safely.
   */
  async batch(commands: readonly BatchCommand[], options: CallOptions = {}): Promise<BatchReceipt> {
    const keyed: KeyedCommand[] = commands.map((c) =>
      'publish' in c
        ? { publish: { ...c.publish, idempotencyKey: c.publish.idempotencyKey ?? randomUUID() } }
        : { send: { ...c.send, idempotencyKey: c.send.idempotencyKey ?? randomUUID() } },
    );
    const answer = batchAnswer((await this.post('/api/batch', { commands: keyed }, true, options.signal)).body, 'answer');
    return {
      results: answer.results.map((r, i) => {
        const idempotencyKey = keyOf(keyed[i]!);
        if ('error' in r) return { error: r.error, idempotencyKey };
        const { replayed, ...position } = r;
        return { ...position, idempotencyKey, replayed: replayed === true };
      }),
    };
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

  /** One publish or send as its own request. */
  private async publishOne(command: KeyedCommand, signal: AbortSignal | undefined): Promise<Settled> {
    const answer = 'publish' in command
      ? await this.post('/api/publish', command.publish, true, signal)
      : await this.post('/api/send', command.send, true, signal);
    return { answer: publishAnswer(answer.body, 'answer'), replayed: answer.headers.get(REPLAYED_HEADER) === 'true' };
  }

  private get(path: string, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    return this.runner.run({ method: 'GET', path, retryable: true, signal });
  }

  private post(path: string, body: RequestBody, retryable: boolean, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    return this.runner.run({ method: 'POST', path, body, retryable, signal });
  }
}

function receipt({ answer, replayed }: Settled, idempotencyKey: string): PublishReceipt {
  return { ...answer, idempotencyKey, replayed };
}

function keyOf(command: KeyedCommand): string {
  return 'publish' in command ? command.publish.idempotencyKey : command.send.idempotencyKey;
}
