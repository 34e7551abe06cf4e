/**
 * The Lua scripts: each runs atomically on the node that owns the
 * channel's slot (all its keys share one hash tag), so numbering, storing
 * and publishing cannot interleave between nodes publishing at once.
 *
 * Time comes from the Redis server (`TIME`), not from the nodes, so that
 * TTLs mean the same on every node whatever their clocks say.
 */
import { createHash } from 'node:crypto';

/** The commands the broker sends on its command connection: `Redis` and `Cluster` both have them. */
export interface CommandClient {
  evalsha(...args: [sha1: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
  eval(...args: [script: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  spublish(channel: string, message: string): Promise<unknown>;
}

/** A script sent by SHA, and in full when the server does not have it yet (after a restart or failover). */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: CommandClient, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/** Server time in ms, as an integer (Lua numbers are doubles: exact up to 2^53). */
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * A channel's numbering: `o` and `e` in the meta hash. When the epoch is
 * missing the numbering restarts: a new epoch (ARGV[1], random, from the
 * caller) and an empty stream, so old entries never mix with new offsets.
 */
const EPOCH = `
local state = redis.call('HMGET', KEYS[1], 'e', 'o')
local epoch, top = state[1], tonumber(state[2]) or 0
if not epoch then
  epoch, top = ARGV[1], 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
`;

/**
 * KEYS: meta, stream. ARGV: epoch if new, size, history ttl ms, meta ttl ms,
 * stored publication JSON, publisher ts, pub/sub channel, PUBLISH or SPUBLISH.
 * Returns {offset, epoch}. Keep the envelope in step with `codec.ts`.
 */
export const PUBLISH = new LuaScript(
  'publish',
  `${EPOCH}${NOW}
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
local id = string.format('%d-0', offset)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], id, 'd', ARGV[5], 't', string.format('%d', now))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call(ARGV[8], ARGV[7], string.format('{"o":%d,"e":"%s","t":%s,"p":', offset, epoch, ARGV[6]) .. ARGV[5] .. '}')
return {offset, epoch}
`,
);

/**
 * KEYS: meta, stream. ARGV: epoch if new, since ('' for the newest), limit,
 * history ttl ms, meta ttl ms. Returns {top, epoch, earliest, offset1, json1, …}.
 *
 * Entries older than the TTL are trimmed first: the stream is in accept
 * order, so they form its head and the scan stops at the first fresh one.
 */
export const HISTORY = new LuaScript(
  'history',
  `${EPOCH}${NOW}
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local cutoff = now - tonumber(ARGV[4])
local earliest = top + 1
local stale = nil
local from = '-'
for _ = 1, 100000 do
  local batch = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 64)
  if #batch == 0 then break end
  local fresh = nil
  for i = 1, #batch do
    local id, fields = batch[i][1], batch[i][2]
    local at = 0
    for f = 1, #fields, 2 do
      if fields[f] == 't' then at = tonumber(fields[f + 1]) end
    end
    if at > cutoff then
      fresh = tonumber(string.match(id, '^(%d+)'))
      break
    end
    stale = id
  end
  if fresh then
    earliest = fresh
    break
  end
  from = '(' .. stale
end
if stale then
  if earliest <= top then
    redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', earliest))
  else
    redis.call('DEL', KEYS[2])
  end
end

local out = {top, epoch, earliest}
local limit = tonumber(ARGV[3])
if limit > 0 and earliest <= top then
  local entries
  if ARGV[2] ~= '' then
    local first = math.max(earliest, tonumber(ARGV[2]) + 1)
    if first > top then return out end
    entries = redis.call('XRANGE', KEYS[2], string.format('%d', first), '+', 'COUNT', limit)
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', string.format('%d', earliest), 'COUNT', limit)
    local n = #entries
    for i = 1, math.floor(n / 2) do
      entries[i], entries[n - i + 1] = entries[n - i + 1], entries[i]
    end
  end
  for i = 1, #entries do
    local fields = entries[i][2]
    local data = nil
    for f = 1, #fields, 2 do
      if fields[f] == 'd' then data = fields[f + 1] end
    end
    out[#out + 1] = tonumber(string.match(entries[i][1], '^(%d+)'))
    out[#out + 1] = data or 'null'
  end
end
return out
`,
);

/**
 * KEYS: expiry zset, data hash. ARGV: ttl ms, then session, entry JSON pairs.
 * Each entry expires at now + ttl (its score); the keys live at least as
 * long as their newest entry.
 */
export const PRESENCE_ADD = new LuaScript(
  'presence-add',
  `${NOW}
local ttl = tonumber(ARGV[1])
local score = string.format('%d', now + ttl)
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], score, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 0
`,
);

/** KEYS: expiry zset, data hash. ARGV: sessions. */
export const PRESENCE_REMOVE = new LuaScript(
  'presence-remove',
  `
for i = 1, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  redis.call('ZREM', KEYS[1], unpack(ARGV, i, last))
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, last))
end
return 0
`,
);

/** KEYS: expiry zset, data hash. Removes expired entries; returns the JSON of the live ones. */
export const PRESENCE_LIST = new LuaScript(
  'presence-list',
  `${NOW}
local nowText = string.format('%d', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowText)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowText)
  for i = 1, #gone, 500 do
    redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 499, #gone)))
  end
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. nowText, '+inf')
local out = {}
for i = 1, #live, 500 do
  local values = redis.call('HMGET', KEYS[2], unpack(live, i, math.min(i + 499, #live)))
  for j = 1, #values do
    if values[j] then out[#out + 1] = values[j] end
  end
end
return out
`,
);
