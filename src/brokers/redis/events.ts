/**
 * The event log in Redis (standalone only: a script touches a user's
 * presence hash and a partition's stream, which a Redis Cluster would keep
 * in different slots). Each partition is a stream, `<prefix>:ev:<n>`,
 * whose entry ID gives the event its time and, with the partition number,
 * its id; a partition's lease is a string `<prefix>:ev:<n>:lease` holding
 * the node id, with an expiry. Delivered events are deleted (XDEL), so a
 * stream's length is what waits in it, and the bound is checked by the same
 * script that logs.
 *
 * The presence part (`presence.ts`) sends the entries of personal channels
 * through `added` and `removed` while recording: one script adds or removes
 * the entries and, when the hash went from empty to not or back, appends
 * the transition. The entries of channels whose joins and leaves are logged
 * go through `joined` and `left`: one script per partition of their users
 * adds or removes them and appends `join` for each entry it added, `leave`
 * for each it removed (so several nodes dropping a dead node's entries at
 * once log each `leave` once).
 */
import { EVENT_PARTITIONS, partitionBound, partitionOf, type Backlog, type EventLog, type EventType, type LeaseState, type LoggedEvent, type RecordOptions } from '../events.js';
import { personalChannelUser } from '../../protocol/index.js';
import type { PresenceEntry } from '../broker.js';
import { groupBy } from './batches.js';
import type { RedisKeys } from './keys.js';
import { LuaScript, type CommandClient } from './lua.js';

/** An XADD of the transition (after the bound check). ARGV: user, node, bound, session to report ('' for none). */
const LOG_TRANSITION = (type: EventType) => `
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if ARGV[4] == '' then
  return redis.call('XADD', KEYS[2], '*', 'type', '${type}', 'user', ARGV[1], 'node', ARGV[2])
end
return redis.call('XADD', KEYS[2], '*', 'type', '${type}', 'user', ARGV[1], 'node', ARGV[2], 'session', ARGV[4])
`;

/**
 * KEYS: presence hash, partition stream. ARGV: user, node, bound, first
 * session, then session, entry pairs. Returns the event's stream ID, 0 (no
 * transition) or -1 (the partition is full).
 */
const ADD = new LuaScript(
  'presence-add-logged',
  `local before = redis.call('HLEN', KEYS[1])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if before > 0 then return 0 end
${LOG_TRANSITION('online')}`,
);

/** KEYS and ARGV as `ADD`, but sessions to remove after the fourth. */
const REMOVE = new LuaScript(
  'presence-remove-logged',
  `if redis.call('HLEN', KEYS[1]) == 0 then return 0 end
for i = 5, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
${LOG_TRANSITION('offline')}`,
);

/**
 * XADD of a `join` or `leave` of session ARGV[i] of user ARGV[i + 1], unless
 * the partition is full (then the session is listed in `dropped`).
 * ARGV: channel, node, bound.
 */
const LOG_MEMBER = (type: 'join' | 'leave') => `
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then
  dropped[#dropped + 1] = ARGV[i]
else
  redis.call('XADD', KEYS[2], '*', 'type', '${type}', 'user', ARGV[i + 1], 'node', ARGV[2], 'session', ARGV[i], 'channel', ARGV[1])
end`;

/**
 * KEYS: presence hash, partition stream. ARGV: channel, node, bound, then
 * session, user, entry triples. Logs `join` for each entry that was not
 * there. Returns the sessions whose event was dropped (the partition is full).
 */
const JOIN = new LuaScript(
  'presence-join-logged',
  `local dropped = {}
for i = 4, #ARGV, 3 do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) == 1 then ${LOG_MEMBER('join')} end
end
return dropped`,
);

/** KEYS as `JOIN`; ARGV: channel, node, bound, then session, user pairs. Logs `leave` for each entry it removed. */
const LEAVE = new LuaScript(
  'presence-leave-logged',
  `local dropped = {}
for i = 4, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then ${LOG_MEMBER('leave')} end
end
return dropped`,
);

/**
 * KEYS: leases. ARGV: node, ttl ms, how many to hold at most. Keeps the
 * leases held, then takes free ones. Returns per lease 1 (the node's), 0
 * (another's) or -1 (free).
 */
const CLAIM = new LuaScript(
  'events-claim',
  `local out, held = {}, 0
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i], held = 1, held + 1
  elseif holder then
    out[i] = 0
  else
    out[i] = -1
  end
end
for i = 1, #KEYS do
  if held >= tonumber(ARGV[3]) then break end
  if out[i] == -1 then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[i], held = 1, held + 1
  end
end
return out`,
);

const LEASE_STATES: Readonly<Record<number, LeaseState>> = { 1: 'mine', 0: 'other', [-1]: 'free' };

/** KEYS: leases. ARGV: node. */
const RELEASE = new LuaScript(
  'events-release',
  `for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0`,
);

/** KEYS: lease, stream. ARGV: node, stream IDs. 1 when deleted, 0 when the lease is another node's. */
const SETTLE = new LuaScript(
  'events-settle',
  `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV do redis.call('XDEL', KEYS[2], ARGV[i]) end
return 1`,
);

/** KEYS: stream. ARGV: count. */
const READ = new LuaScript('events-read', `return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])`);

/** KEYS: streams. Returns {ms of the oldest or -1, then the events waiting in each}. */
const BACKLOG = new LuaScript(
  'events-backlog',
  `local out, oldest = {}, -1
for i = 1, #KEYS do
  out[i + 1] = redis.call('XLEN', KEYS[i])
  local first = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1]
  if first then
    local ms = tonumber(string.match(first[1], '^(%d+)'))
    if oldest < 0 or ms < oldest then oldest = ms end
  end
end
out[1] = oldest
return out`,
);

type StreamEntry = [id: string, fields: string[]];

export class RedisEvents implements EventLog {
  readonly partitions = EVENT_PARTITIONS;
  private recordOptions: RecordOptions | undefined;

  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
  ) {}

  record(options: RecordOptions): void {
    this.recordOptions = options;
  }

  /** The user whose presence on `channel` is logged, or undefined when its entries are plain. */
  logs(channel: string): string | undefined {
    return this.recordOptions ? personalChannelUser(channel) : undefined;
  }

  /** Whether the log records (`record` was called). */
  get recording(): boolean {
    return this.recordOptions !== undefined;
  }

  /** Whether the entries of `channel` go through `joined` and `left`: the recording logs its joins and leaves. */
  logsMembers(channel: string): boolean {
    return this.recordOptions?.joinLeave?.(channel) === true;
  }

  /** Write the entries of `channel` (all of `node`) and log `join` for each that was not there. */
  async joined(channel: string, node: string, entries: PresenceEntry[]): Promise<void> {
    await this.members(JOIN, 'join', channel, node, entries, (e) => [e.session, e.user, JSON.stringify({ user: e.user, session: e.session, node: e.node })]);
  }

  /** Remove the entries of `channel` (all of `node`) and log `leave` for each that was there. */
  async left(channel: string, node: string, entries: Array<Pick<PresenceEntry, 'user' | 'session'>>): Promise<void> {
    await this.members(LEAVE, 'leave', channel, node, entries, (e) => [e.session, e.user]);
  }

  /** Write the entries of personal `channel` (`fields`: session, entry JSON pairs) and log `online` if they are its first. */
  async added(channel: string, user: string, node: string, fields: string[]): Promise<void> {
    await this.run(ADD, 'online', channel, user, node, fields[0] ?? '', fields);
  }

  /** Remove `sessions` of personal `channel` and log `offline` if they were its last; `session` is reported with it. */
  async removed(channel: string, user: string, node: string, session: string | undefined, sessions: string[]): Promise<void> {
    await this.run(REMOVE, 'offline', channel, user, node, session ?? '', sessions);
  }

  async claim(node: string, ttlMs: number, most: number): Promise<LeaseState[]> {
    const out = (await CLAIM.run(this.client(), this.leases(), [node, ttlMs, most])) as number[];
    return out.map((n) => LEASE_STATES[n] ?? 'other');
  }

  async release(node: string): Promise<void> {
    await RELEASE.run(this.client(), this.leases(), [node]);
  }

  async read(partition: number, count: number): Promise<LoggedEvent[]> {
    const entries = (await READ.run(this.client(), [this.keys.events(partition)], [count])) as StreamEntry[];
    return entries.map(([id, fields]) => eventOf(partition, id, fields));
  }

  async settle(partition: number, node: string, ids: string[]): Promise<boolean> {
    const streamIds = ids.map((id) => id.slice(id.indexOf('-') + 1));
    const done = await SETTLE.run(this.client(), [this.keys.eventLease(partition), this.keys.events(partition)], [node, ...streamIds]);
    return done === 1;
  }

  async backlog(): Promise<Backlog> {
    const streams = Array.from({ length: this.partitions }, (_, p) => this.keys.events(p));
    const [oldest, ...partitions] = (await BACKLOG.run(this.client(), streams, [])) as number[];
    return { pending: partitions.reduce((a, b) => a + b, 0), partitions, oldestTs: oldest === undefined || oldest < 0 ? null : oldest };
  }

  private async run(script: LuaScript, type: EventType, channel: string, user: string, node: string, session: string, rest: string[]): Promise<void> {
    const recording = this.recordOptions;
    const bound = partitionBound(recording?.maxPending ?? Number.MAX_SAFE_INTEGER, this.partitions);
    const stream = this.keys.events(partitionOf(user, this.partitions));
    const result = await script.run(this.client(), [this.keys.presence(channel), stream], [user, node, bound, session, ...rest]);
    if (result === -1) recording?.onOverflow({ type, ts: Date.now(), node, user, ...(session ? { session } : {}) });
  }

  /** Run `script` once per partition of the entries' users; report the events it could not log. */
  private async members<E extends Pick<PresenceEntry, 'user' | 'session'>>(
    script: LuaScript,
    type: 'join' | 'leave',
    channel: string,
    node: string,
    entries: E[],
    args: (entry: E) => string[],
  ): Promise<void> {
    const recording = this.recordOptions;
    const bound = partitionBound(recording?.maxPending ?? Number.MAX_SAFE_INTEGER, this.partitions);
    const byPartition = groupBy(entries, (e) => partitionOf(e.user, this.partitions));
    await Promise.all(
      [...byPartition].map(async ([partition, group]) => {
        const keys = [this.keys.presence(channel), this.keys.events(partition)];
        const dropped = (await script.run(this.client(), keys, [channel, node, bound, ...group.flatMap(args)])) as string[];
        for (const session of dropped) {
          const user = group.find((e) => e.session === session)?.user ?? '';
          recording?.onOverflow({ type, ts: Date.now(), node, user, session, channel });
        }
      }),
    );
  }

  private leases(): string[] {
    return Array.from({ length: this.partitions }, (_, p) => this.keys.eventLease(p));
  }
}

/** The event of a stream entry, as written (a receiver ignores types it does not know). Every entry is delivered, so that none can block its partition. */
function eventOf(partition: number, id: string, fields: string[]): LoggedEvent {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  const session = f.get('session');
  const channel = f.get('channel');
  return {
    id: `${partition}-${id}`,
    type: (f.get('type') ?? '') as EventType,
    ts: Number(id.slice(0, id.indexOf('-'))),
    node: f.get('node') ?? '',
    user: f.get('user') ?? '',
    ...(session ? { session } : {}),
    ...(channel ? { channel } : {}),
  };
}
