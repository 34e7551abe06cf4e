/**
 * What business services ask of the cluster — publish, send, batch,
 * presence, a user's sessions, history — checked and answered in one
 * place, whether it comes over HTTP (the server API) or in-process (the
 * node `startNode` returns): the same checks, errors and answers.
 */
import {
  ErrorCode,
  isValidChannel,
  isValidUserId,
  MAX_BATCH_COMMANDS,
  MAX_HISTORY_LIMIT,
  personalChannel,
  SwitchboardError,
  toErrorBody,
  type BatchAnswer,
  type BatchCommand,
  type BatchResult,
  type HistoryAnswer,
  type HistoryParams,
  type PresenceAnswer,
  type UserAnswer,
} from '../../protocol/index.js';
import type { PublishReceipt } from '../../brokers/broker.js';
import type { Gateway } from './gateway.js';

/** Options of one publish or send. */
export interface CommandOptions {
  /** Publish at most once per key and channel within the idempotency window: 1-128 printable ASCII characters without spaces. */
  idempotencyKey?: string;
}

/**
 * The server API in-process (`startNode`'s node): the same checks, errors
 * (`SwitchboardError` with the API's codes) and answers as over HTTP.
 */
export interface ServerCommands {
  /** Publish `data` to `channel`; the answer is its position (`duplicate` for a repeated idempotency key). */
  publish(channel: string, data: unknown, options?: CommandOptions): Promise<PublishReceipt>;
  /** Publish `data` to every connection of `user`. */
  send(user: string, data: unknown, options?: CommandOptions): Promise<PublishReceipt>;
  /** Run 1 to 1000 publish and send commands, in order per channel; one result or error each. */
  batch(commands: readonly BatchCommand[]): Promise<BatchAnswer>;
  /** Who is subscribed to `channel`, across the cluster. */
  presence(channel: string): Promise<PresenceAnswer>;
  /** Whether `user` is connected anywhere in the cluster, and its sessions. */
  user(user: string): Promise<UserAnswer>;
  /** A page of `channel`'s history. */
  history(channel: string, params?: HistoryParams): Promise<HistoryAnswer>;
}

/** A publish whose fields were checked. */
interface CheckedPublish {
  channel: string;
  data: unknown;
  idempotencyKey: string | undefined;
}

/** An idempotency key: printable ASCII without spaces, like the `Idempotency-Key` header drafts allow. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export class Commands implements ServerCommands {
  constructor(
    private readonly gateway: Gateway,
    /** Refuses `data` that cannot be published (absent; in-process also: not JSON, or too large). */
    private readonly checkData: (data: unknown) => void,
  ) {}

  /** Publish `data` to `channel`. */
  publish(channel: unknown, data: unknown, options: { idempotencyKey?: unknown } = {}): Promise<PublishReceipt> {
    return this.run({ channel: requireChannel(channel), data: this.data(data), idempotencyKey: requireIdempotencyKey(options.idempotencyKey) });
  }

  /** Publish `data` to every connection of `user` (its personal channel). */
  send(user: unknown, data: unknown, options: { idempotencyKey?: unknown } = {}): Promise<PublishReceipt> {
    return this.run({ channel: personalChannel(requireUser(user)), data: this.data(data), idempotencyKey: requireIdempotencyKey(options.idempotencyKey) });
  }

  /**
   * Run 1 to `MAX_BATCH_COMMANDS` publish and send commands: those on one
   * channel one after another in the order given, the others concurrently.
   * Each gets its result (marked `replayed` for a repeated idempotency key)
   * or its error (a malformed one too); one failing does not stop the others.
   */
  async batch(commands: unknown): Promise<BatchAnswer> {
    if (!Array.isArray(commands) || commands.length === 0 || commands.length > MAX_BATCH_COMMANDS) {
      throw new SwitchboardError(ErrorCode.BadRequest, `"commands" must be an array of 1 to ${MAX_BATCH_COMMANDS} commands`);
    }
    const results: BatchResult[] = new Array<BatchResult>(commands.length);
    const lanes = new Map<string, Array<{ index: number; publish: CheckedPublish }>>();
    commands.forEach((command: unknown, index) => {
      try {
        const publish = this.command(command);
        let lane = lanes.get(publish.channel);
        if (!lane) lanes.set(publish.channel, (lane = []));
        lane.push({ index, publish });
      } catch (err) {
        results[index] = { error: toErrorBody(err) };
      }
    });
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const { index, publish } of lane) {
          results[index] = await this.run(publish).then(
            ({ duplicate, ...result }): BatchResult => (duplicate ? { ...result, replayed: true } : result),
            (err: unknown) => ({ error: toErrorBody(err) }),
          );
        }
      }),
    );
    return { results };
  }

  /** The sessions of `user` across the cluster. */
  async user(user: unknown): Promise<UserAnswer> {
    const entries = await this.gateway.presence(personalChannel(requireUser(user)));
    return { online: entries.length > 0, sessions: entries.map(({ session, node }) => ({ session, node })) };
  }

  /** Who is subscribed to `channel` across the cluster (a namespace that keeps presence). */
  async presence(channel: unknown): Promise<PresenceAnswer> {
    const name = requireChannel(channel);
    const policy = this.gateway.namespaces.of(name);
    if (!policy.presence) {
      throw new SwitchboardError(ErrorCode.NotFound, `presence is not kept for namespace "${policy.namespace}"`);
    }
    return { members: await this.gateway.presence(name) };
  }

  /** A page of `channel`'s history (a namespace that keeps it). */
  async history(channel: unknown, { since, limit }: HistoryParams = {}): Promise<HistoryAnswer> {
    const name = requireChannel(channel);
    const policy = this.gateway.namespaces.of(name);
    if (!policy.history) throw new SwitchboardError(ErrorCode.NotFound, `namespace "${policy.namespace}" keeps no history`);
    for (const [name, v] of [['since', since], ['limit', limit]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new SwitchboardError(ErrorCode.BadRequest, `"${name}" must be a non-negative integer`);
    }
    const size = Math.min(limit ?? policy.history.size, MAX_HISTORY_LIMIT);
    const page = await this.gateway.history(name, since === undefined ? { limit: size } : { since, limit: size });
    return { offset: page.offset, epoch: page.epoch, messages: page.messages };
  }

  private run({ channel, data, idempotencyKey }: CheckedPublish): Promise<PublishReceipt> {
    return this.gateway.publish(channel, data, idempotencyKey === undefined ? {} : { idempotencyKey });
  }

  private data(data: unknown): unknown {
    this.checkData(data);
    return data;
  }

  /** One batch command: `{publish: {channel, data, idempotencyKey?}}` or `{send: {user, data, idempotencyKey?}}`. */
  private command(command: unknown): CheckedPublish {
    const fields = typeof command === 'object' && command !== null ? Object.keys(command) : [];
    if (fields.length !== 1 || (fields[0] !== 'publish' && fields[0] !== 'send')) {
      throw new SwitchboardError(ErrorCode.BadRequest, 'a command is {"publish": {channel, data}} or {"send": {user, data}}');
    }
    const body: unknown = (command as Record<string, unknown>)[fields[0]];
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new SwitchboardError(ErrorCode.BadRequest, `"${fields[0]}" must be an object`);
    }
    const b = body as { channel?: unknown; user?: unknown; data?: unknown; idempotencyKey?: unknown };
    if (!('data' in b)) throw new SwitchboardError(ErrorCode.BadRequest, `"${fields[0]}" needs "data"`);
    const channel = fields[0] === 'publish' ? requireChannel(b.channel) : personalChannel(requireUser(b.user));
    return { channel, data: this.data(b.data), idempotencyKey: requireIdempotencyKey(b.idempotencyKey) };
  }
}

export function requireChannel(v: unknown): string {
  if (!isValidChannel(v)) {
    throw new SwitchboardError(ErrorCode.BadRequest, 'channel name must be 1-255 characters of A-Za-z0-9_-.:@=,');
  }
  return v;
}

export function requireUser(v: unknown): string {
  if (!isValidUserId(v)) throw new SwitchboardError(ErrorCode.BadRequest, '"user" must be a valid user id');
  return v;
}

/** An idempotency key as given, or nothing; anything else is refused. */
export function requireIdempotencyKey(v: unknown, what = '"idempotencyKey"'): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !IDEMPOTENCY_KEY.test(v)) {
    throw new SwitchboardError(ErrorCode.BadRequest, `${what} must be 1-128 printable ASCII characters without spaces`);
  }
  return v;
}

/** Data that came in a JSON body: present is enough. */
export function dataFromJson(data: unknown): void {
  if (data === undefined) throw new SwitchboardError(ErrorCode.BadRequest, 'body needs "data"');
}

/** Data given in-process: it must survive JSON (what every broker and client gets) and stay under `maxBytes`. */
export function inProcessData(maxBytes: number): (data: unknown) => void {
  return (data) => {
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch (err) {
      throw new SwitchboardError(ErrorCode.BadRequest, `data cannot be sent as JSON: ${(err as Error).message}`);
    }
    if (text === undefined) throw new SwitchboardError(ErrorCode.BadRequest, 'data cannot be sent as JSON (undefined, a function or a symbol)');
    if (Buffer.byteLength(text) > maxBytes) throw new SwitchboardError(ErrorCode.TooLarge, `data is over ${maxBytes} bytes as JSON`);
  };
}
