/**
 * fast-check generators of hostile client input, and the rules (from the
 * SPEC and docs/protocol.md, not from the decoder) that say which answer
 * each input is owed.
 */
import fc from 'fast-check';
import type { ServerFrame } from '../../src/protocol/index.js';

/** The error codes a frame may be answered with (docs/protocol.md "Errors by frame"); `internal` would be a bug. */
export const FRAME_ERROR_CODES = ['bad_request', 'forbidden', 'too_large', 'rate_limited', 'unavailable'] as const;

/** A channel name as the SPEC defines it: 1–255 chars of `A-Za-z0-9_-.:@=,`. */
export const SPEC_CHANNEL = /^[A-Za-z0-9_\-.:@=,]{1,255}$/;

export const validChannel = fc.stringMatching(/^[A-Za-z0-9_\-.@=,][A-Za-z0-9_\-.:@=,]{0,30}$/);

/** Names that break the SPEC's rule: empty, too long, or with a character outside the alphabet. */
export const invalidChannel = fc.oneof(
  fc.constant(''),
  fc.constant('x'.repeat(256)),
  fc.tuple(validChannel, fc.constantFrom(' ', '/', '#', '*', '\u0000', 'é', '\ud800', '😀', '\n'), validChannel).map(([a, c, b]) => a + c + b),
);

/** Anything that is not a string. */
const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }), fc.object({ maxDepth: 1 }));

/** Ids a client could send: usable ones (non-negative safe integers) and every near miss. */
export const anyId = fc.oneof(
  fc.nat({ max: 1_000_000 }),
  fc.constantFrom(-1, 1.5, Number.MAX_SAFE_INTEGER + 1, 1e300, '1', null, true, [1], { id: 1 }),
);

const frameType = fc.oneof(
  fc.constantFrom('subscribe', 'unsubscribe', 'publish', 'send', 'ack', 'ping', 'pong'),
  fc.constantFrom('SUBSCRIBE', 'welcome', 'reply', 'message', '__proto__', 'constructor', ''),
  fc.string({ maxLength: 40 }),
  notAString,
);

/**
 * Objects shaped like frames whose every field may be missing, valid, or of
 * the wrong type: the input a buggy or hostile client actually sends.
 */
export const frameLike = fc.record(
  {
    type: frameType,
    id: anyId,
    channel: fc.oneof(validChannel, invalidChannel, fc.constantFrom('user:fuzzer', 'user:someone-else'), notAString),
    user: fc.oneof(validChannel, invalidChannel, fc.constant('fuzzer'), notAString),
    data: fc.jsonValue({ maxDepth: 3 }),
    offset: fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 2 ** 60, '3'), notAString),
    since: fc.oneof(
      fc.record({ offset: fc.oneof(fc.nat(), fc.constantFrom(-1, 1.5, 'x')), epoch: fc.oneof(fc.string({ maxLength: 70 }), notAString) }, { requiredKeys: [] }),
      notAString,
    ),
  },
  { requiredKeys: [] },
);

/** JSON nested `depth` levels deep, as text (arrays, objects, or both). */
export function nestedJson(depth: number, kind: 'array' | 'object' | 'mixed' = 'array'): string {
  const open = kind === 'array' ? '[' : kind === 'object' ? '{"a":' : '[{"a":';
  const close = kind === 'array' ? ']' : kind === 'object' ? '}' : '}]';
  const levels = kind === 'mixed' ? Math.ceil(depth / 2) : depth;
  return open.repeat(levels) + '0' + close.repeat(levels);
}

/** A frame with a usable id whose `data` (or another field) nests `depth` levels. */
export const deepFrame = fc
  .tuple(
    fc.integer({ min: 30, max: 2000 }),
    fc.constantFrom<'array' | 'object' | 'mixed'>('array', 'object', 'mixed'),
    fc.constantFrom('publish', 'ping', 'subscribe', 'ack', 'pong', 'nope'),
    fc.nat({ max: 1000 }),
  )
  .map(([depth, kind, type, id]) => `{"type":"${type}","id":${id},"channel":"deep","data":${nestedJson(depth, kind)}}`);

/** Text a client might put in a WebSocket text frame. */
export const hostileText = fc.oneof(
  { weight: 3, arbitrary: frameLike.map((f) => JSON.stringify(f)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
  // Truncated frames: valid JSON cut short.
  { weight: 1, arbitrary: frameLike.chain((f) => { const s = JSON.stringify(f); return fc.nat({ max: s.length }).map((n) => s.slice(0, n)); }) },
  { weight: 1, arbitrary: deepFrame },
  { weight: 1, arbitrary: fc.constantFrom('null', '[]', '""', '0', 'true', '{}', '{"type":"ping","id":1,"type":"nope"}', '\ufeff{"type":"ping","id":1}') },
);

/** A WebSocket message from the client: text, or a binary frame of random bytes (often invalid UTF-8). */
export type Input = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

export const hostileInput: fc.Arbitrary<Input> = fc.oneof(
  { weight: 5, arbitrary: hostileText.map((text): Input => ({ kind: 'text', text })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes): Input => ({ kind: 'binary', bytes })) },
);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * What the protocol owes an input, from the SPEC's words only:
 * - `reply`: it carries a usable `id` (a non-negative integer) and is not an
 *   `ack`/`pong`, so exactly one `reply` with that id (or, for `ping`, a `pong`);
 * - `error`: no usable id, so exactly one `error` frame;
 * - `quiet`: an `ack` or `pong`, which get no reply: nothing, or one `error` frame if malformed.
 */
export type Owed = { kind: 'reply'; id: number; type: unknown } | { kind: 'error' } | { kind: 'quiet' };

export function owed(input: Input): Owed {
  if (input.kind === 'binary') return { kind: 'error' };
  let raw: unknown;
  try {
    raw = JSON.parse(input.text);
  } catch {
    return { kind: 'error' };
  }
  if (!isRecord(raw)) return { kind: 'error' };
  if (raw.type === 'ack' || raw.type === 'pong') return { kind: 'quiet' };
  const id = raw.id;
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return { kind: 'reply', id, type: raw.type };
  return { kind: 'error' };
}

/**
 * Check the frames an input got (deliveries of `message` already removed)
 * against what it is owed; returns a description of the breach, or null.
 */
export function breach(input: Input, got: ServerFrame[]): string | null {
  const o = owed(input);
  const bad = got.find((f) => (f.type === 'reply' || f.type === 'error') && 'error' in f && !(FRAME_ERROR_CODES as readonly string[]).includes(f.error.code));
  if (bad) return `undocumented error code in ${JSON.stringify(bad)}`;
  switch (o.kind) {
    case 'quiet':
      return got.length === 0 || (got.length === 1 && got[0]?.type === 'error') ? null : `ack/pong answered with ${JSON.stringify(got)}`;
    case 'error':
      return got.length === 1 && got[0]?.type === 'error' ? null : `expected one error frame, got ${JSON.stringify(got)}`;
    case 'reply': {
      const f = got[0];
      if (got.length !== 1 || !f) return `expected one reply to id ${o.id}, got ${JSON.stringify(got)}`;
      if (f.type === 'reply' && f.id === o.id && ('result' in f || 'error' in f)) return null;
      if (f.type === 'pong' && f.id === o.id && o.type === 'ping') return null;
      return `expected a reply to id ${o.id}, got ${JSON.stringify(f)}`;
    }
  }
}
