/**
 * The Lua scripts: each runs atomically on the node that owns the
 * channel's slot (all its keys share one hash tag), so numbering, storing
 * and publishing cannot interleave between nodes publishing at once.
 *
 * Time comes from the Redis server (`TIME`), not from the nodes, so that
 * TTLs mean the same on every node whatever their clocks say.
 */
import { LuaScript } from './lua.js';

/** Server time in ms, as an integer (Lua numbers are doubles: exact up to 2^53). */
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * The locals EPOCH and STORE work on, bound from the KEYS and ARGV of a
 * script about one publication. KEYS: meta, stream. ARGV: epoch if new,
 * history size, history ttl ms, meta ttl ms, stored publication JSON,
 * publisher ts. (The batch script binds them per publication instead.)
 */
const BIND = `
local meta, stream = KEYS[1], KEYS[2]
local fresh, size, historyTtl, metaTtl, stored, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
`;

/**
 * A channel's numbering: `o` and `e` in the meta hash (and `x`, when its
 * TTLs were last set, see STORE). When the epoch is missing the numbering
 * restarts: a new epoch (`fresh`, random, from the caller) and an empty
 * stream, so old entries never mix with new offsets.
 */
const EPOCH = `
local state = redis.call('HMGET', meta, 'e', 'o', 'x')
local epoch, top, expirySetAt = state[1], tonumber(state[2]) or 0, tonumber(state[3]) or 0
if not epoch then
  epoch, top, expirySetAt = fresh, 0, 0
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
`;

/**
 * Number and store a publication (after EPOCH and NOW). Sets `offset`.
 *
 * The stream is trimmed approximately (`MAXLEN ~`: whole internal nodes at
 * a time, far cheaper than cutting one entry per message), so it may hold up
 * to about a hundred entries more than the history size; HISTORY never
 * returns those (its earliest offset is at most `size` below the top).
 *
 * The TTLs are set only when a sixteenth of the history TTL has passed since
 * they were last set, each for that sixteenth longer: a busy channel pays for
 * them once in a while instead of twice per message, and its history still
 * lives at least the history TTL after its last publication.
 */
const STORE = `
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('XADD', stream, 'MAXLEN', '~', size, string.format('%d-0', offset), 'd', stored, 't', string.format('%d', now))
local slack = math.floor(tonumber(historyTtl) / 16)
if now - expirySetAt >= slack then
  redis.call('PEXPIRE', stream, tonumber(historyTtl) + slack)
  redis.call('PEXPIRE', meta, tonumber(metaTtl) + slack)
  redis.call('HSET', meta, 'x', string.format('%d', now))
end
`;

/** The envelope of a stored publication (after STORE). Keep it in step with `codec.ts`. */
const NUMBERED_ENVELOPE = `string.format('{"o":%d,"e":"%s","t":%s,"p":', offset, epoch, ts) .. stored .. '}'`;

/**
 * Append the stream entries `entries` to `out` as offset, stored JSON pairs
 * (`null` for an entry without its `d` field).
 */
const APPEND_ENTRIES = `for i = 1, #entries do
  local fields = entries[i][2]
  local data = nil
  for f = 1, #fields, 2 do
    if fields[f] == 'd' then data = fields[f + 1] end
  end
  out[#out + 1] = tonumber(string.match(entries[i][1], '^(%d+)'))
  out[#out + 1] = data or 'null'
end`;

/** Values per publication in the ARGV of PUBLISH_BATCH, after its first. */
const BATCH_ARGS = 8;

/**
 * Publications with history, routed to subscribers, that a node has ready in
 * the same moment: numbered, stored and published in one call, in the order
 * given (several may be on one channel). Each may be run at most once per
 * idempotency key, as `once` does for one script.
 *
 * KEYS, per publication: meta, stream, idempotency key (the meta key again
 * when it has none). ARGV: PUBLISH or SPUBLISH; then per publication
 * `BATCH_ARGS` values: epoch if new, size, history ttl ms, meta ttl ms, stored
 * publication JSON, publisher ts, pub/sub channel, idempotency window ms (0:
 * none). Returns per publication '0' or '1' (a repeat of its key: nothing
 * done, the first numbering returned), offset, epoch.
 */
export const PUBLISH_BATCH = new LuaScript(
  'publish-batch',
  `${NOW}
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local a = 2 + i * ${BATCH_ARGS}
  local meta, stream, key = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local fresh, size, historyTtl, metaTtl, stored, ts = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local window = tonumber(ARGV[a + 7])
  local first = nil
  if window > 0 then first = redis.call('GET', key) end
  if first then
    local reply = cjson.decode(first)
    out[#out + 1] = '1'
    out[#out + 1] = reply[1]
    out[#out + 1] = reply[2]
  else
${EPOCH}${STORE}
    redis.call(ARGV[1], ARGV[a + 6], ${NUMBERED_ENVELOPE})
    if window > 0 then redis.call('SET', key, cjson.encode({offset, epoch}), 'PX', window) end
    out[#out + 1] = '0'
    out[#out + 1] = offset
    out[#out + 1] = epoch
  end
end
return out
`,
);

/**
 * A publication routed to every node or to node inboxes, in one step with
 * numbering and storing it (when the channel keeps history) and with reading
 * the registry, so a node that registered before it was stored receives it.
 * Always classic PUBLISH: a script may not SPUBLISH outside its slot, and a
 * cluster carries classic messages to every cluster node.
 *
 * KEYS: meta, stream, registry. ARGV 1–6 as PUBLISH; then '1' to store (else
 * 2–4 are ignored), 'all' or 'nodes', the broadcast channel ('all') or the
 * inbox head ('nodes'), '1' to add the registered nodes, then node ids.
 * Returns {offset, epoch} when stored, else {}.
 */
export const ROUTED_PUBLISH = new LuaScript(
  'routed-publish',
  `${BIND}local envelope, result
if ARGV[7] == '1' then
${EPOCH}${NOW}${STORE}
  envelope = ${NUMBERED_ENVELOPE}
  result = {offset, epoch}
else
  envelope = '{"t":' .. ts .. ',"p":' .. stored .. '}'
  result = {}
end
if ARGV[8] == 'all' then
  redis.call('PUBLISH', ARGV[9], envelope)
  return result
end
local seen = {}
local function send(node)
  if not seen[node] then
    seen[node] = true
    redis.call('PUBLISH', ARGV[9] .. node, envelope)
  end
end
for i = 11, #ARGV do send(ARGV[i]) end
if ARGV[10] == '1' then
  local live = redis.call('SMEMBERS', KEYS[3])
  for i = 1, #live do send(live[i]) end
end
return result
`,
);

/**
 * For a broker that carries publications itself (RabbitMQ): number and store
 * a publication like PUBLISH, without publishing it, and tell the caller,
 * per receiver, which publication of the channel was routed to it before
 * this one (its offset and server store time; 0 and 0 for none), so that a
 * receiver can put what arrives from several publishers back in offset
 * order (see `amqp/sequencer.ts`). The registry is read in the same step.
 *
 * Per channel, the meta hash keeps `b`/`bt`: the offset and store time of
 * the last publication routed to every receiver (route `subscribers` or
 * `all`), and the hash `prevs` keeps, per node, `<offset>:<time>` of the last
 * one routed to that node's inbox since then (route `nodes`). A receiver's
 * predecessor is the later of the two.
 *
 * KEYS: meta, stream, registry, prevs. ARGV: 1–5 as PUBLISH (epoch if new,
 * size, history ttl ms, meta ttl ms, stored publication JSON); 6 '1' to store
 * (else 2–4 are ignored and nothing is numbered); 7 's' (subscribers), 'a'
 * (all) or 'n' (nodes); 8 '1' to add the registered nodes; 9… node ids.
 *
 * Returns {offset, epoch, store time} ({0, '', 0} when not stored), then
 * triples {node, previous offset, previous store time}: for 'n' one per
 * target node, each once; for 's' and 'a' first '' (every receiver), then
 * each node whose inbox got a later one.
 */
export const STORE_ROUTED = new LuaScript(
  'store-routed',
  `${BIND}local targets = {}
if ARGV[7] == 'n' then
  local seen = {}
  local function add(node)
    if not seen[node] then
      seen[node] = true
      targets[#targets + 1] = node
    end
  end
  for i = 9, #ARGV do add(ARGV[i]) end
  if ARGV[8] == '1' then
    local live = redis.call('SMEMBERS', KEYS[3])
    for i = 1, #live do add(live[i]) end
  end
end
if ARGV[6] ~= '1' then
  local out = {0, '', 0}
  for i = 1, #targets do
    out[#out + 1] = targets[i]
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
  return out
end
${EPOCH}${NOW}
if epoch == ARGV[1] then redis.call('DEL', KEYS[4]) end
${STORE}
local b = tonumber(redis.call('HGET', KEYS[1], 'b')) or 0
local bt = tonumber(redis.call('HGET', KEYS[1], 'bt')) or 0
local out = {offset, epoch, now}
local function parse(v)
  if not v then return nil, nil end
  local o, t = string.match(v, '^(%d+):(%d+)$')
  return tonumber(o), tonumber(t)
end
if ARGV[7] == 'n' then
  local mark = string.format('%d:%d', offset, now)
  for i = 1, #targets do
    local o, t = parse(redis.call('HGET', KEYS[4], targets[i]))
    if not o or o < b then o, t = b, bt end
    out[#out + 1] = targets[i]
    out[#out + 1] = o
    out[#out + 1] = t
    redis.call('HSET', KEYS[4], targets[i], mark)
  end
  if #targets > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[4]) end
else
  out[#out + 1] = ''
  out[#out + 1] = b
  out[#out + 1] = bt
  local later = redis.call('HGETALL', KEYS[4])
  for i = 1, #later, 2 do
    local o, t = parse(later[i + 1])
    if o and o > b then
      out[#out + 1] = later[i]
      out[#out + 1] = o
      out[#out + 1] = t
    end
  end
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[1], 'b', offset, 'bt', string.format('%d', now))
end
return out
`,
);

/**
 * Read-only: the stored publications with offsets from ARGV[1] to ARGV[2]
 * (inclusive), at most ARGV[3]. KEYS: meta, stream. Returns {epoch ('' when
 * the channel has none), top, offset1, json1, …}. Unlike HISTORY it trims
 * nothing and extends no TTL: a receiver filling a gap knows no policy.
 */
export const HISTORY_RANGE = new LuaScript(
  'history-range',
  `
local state = redis.call('HMGET', KEYS[1], 'e', 'o')
if not state[1] then return {'', 0} end
local out = {state[1], tonumber(state[2]) or 0}
if tonumber(ARGV[1]) > tonumber(ARGV[2]) then return out end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
${APPEND_ENTRIES}
return out
`,
);

/**
 * KEYS: meta, stream, and a reader's ack key to resume after (optional).
 * ARGV: unused (kept for the layout), since ('' for the newest; with an ack
 * key, replaced by the acknowledged offset, 0 when none is kept), limit,
 * history ttl ms, meta ttl ms, history size. Returns {top, epoch, earliest,
 * ack ('' without), offset1, json1, …}; {0, '', 1, ack} for a channel
 * without numbering, for which it writes nothing: a read never creates a
 * key (a client subscribing to many new names must not fill Redis). Only
 * the first publish numbers a channel (see EPOCH).
 *
 * Entries older than the TTL are trimmed first: the stream is in accept
 * order, so they form its head and the scan stops at the first fresh one.
 */
export const HISTORY = new LuaScript(
  'history',
  `local meta, stream = KEYS[1], KEYS[2]
local since, ack = ARGV[2], ''
if KEYS[3] then
  ack = redis.call('GET', KEYS[3]) or ''
  local sep = string.find(ack, ':', 1, true)
  since = sep and string.sub(ack, 1, sep - 1) or '0'
end
local state = redis.call('HMGET', meta, 'e', 'o')
if not state[1] then return {0, '', 1, ack} end
local epoch, top = state[1], tonumber(state[2]) or 0
${NOW}
-- As long as a publish sets it (see STORE), so that a read never shortens it.
redis.call('PEXPIRE', meta, tonumber(ARGV[5]) + math.floor(tonumber(ARGV[4]) / 16))
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
-- What approximate trimming left beyond the history size is not history.
earliest = math.max(earliest, top - tonumber(ARGV[6]) + 1)

local out = {top, epoch, earliest, ack}
local limit = tonumber(ARGV[3])
if limit > 0 and earliest <= top then
  local entries
  if since ~= '' then
    local first = math.max(earliest, tonumber(since) + 1)
    if first > top then return out end
    entries = redis.call('XRANGE', KEYS[2], string.format('%d', first), '+', 'COUNT', limit)
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', string.format('%d', earliest), 'COUNT', limit)
    local n = #entries
    for i = 1, math.floor(n / 2) do
      entries[i], entries[n - i + 1] = entries[n - i + 1], entries[i]
    end
  end
  ${APPEND_ENTRIES}
end
return out
`,
);

/**
 * The same script, run at most once per idempotency key. Its KEYS gain the
 * key's own Redis key last (same hash tag as the channel), its ARGV the
 * window in ms first; both are taken off before the script runs, so it sees
 * its usual layout. Returns {'0', reply} after running it, or {'1', first
 * reply} when the key was used within the window, without running it: the
 * check, the publish and the record are one atomic step.
 */
export function once(script: LuaScript): LuaScript {
  return new LuaScript(
    `${script.name}-once`,
    `local window = table.remove(ARGV, 1)
local key = table.remove(KEYS)
local first = redis.call('GET', key)
if first then return {'1', cjson.decode(first)} end
local function run()
${script.source}
end
local reply = run()
redis.call('SET', key, cjson.encode(reply), 'PX', window)
return {'0', reply}
`,
  );
}

/**
 * A publication without history, through a script so that it can be run
 * `once`. ARGV: PUBLISH or SPUBLISH, pub/sub channel, envelope. Returns {}.
 */
export const PLAIN_PUBLISH = new LuaScript(
  'plain-publish',
  `redis.call(ARGV[1], ARGV[2], ARGV[3])
return {}
`,
);

/**
 * A reader's acknowledged position, `<offset>:<epoch>`: moves only forward
 * within an epoch; another epoch replaces it. KEYS: the ack key. ARGV:
 * epoch, offset, ttl ms. Returns 1 when it moved, 0 when only refreshed.
 */
export const SAVE_ACK = new LuaScript(
  'save-ack',
  `local kept = redis.call('GET', KEYS[1])
if kept then
  local sep = string.find(kept, ':', 1, true)
  if sep and string.sub(kept, sep + 1) == ARGV[1] and tonumber(string.sub(kept, 1, sep - 1)) >= tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3])
return 1
`,
);
