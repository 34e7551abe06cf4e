/**
 * Decoding and validation of client frames, and encoding of server frames.
 * Pure functions: no I/O, usable by the server and by tests alike.
 */
import { isValidChannel, isValidUserId } from './channel.js';
import { ErrorCode, type ErrorBody } from './errors.js';
import type { ClientFrame, Publication, ServerFrame, StreamPosition } from './frames.js';

/** Deepest nesting of arrays and objects accepted in a frame. */
export const MAX_JSON_DEPTH = 32;
/** Longest token a `refresh` frame may carry (a JWT with many channel grants fits easily). */
export const MAX_TOKEN_CHARS = 16_384;

/** An rpc method name: 1-128 characters of A-Za-z0-9_.:/- (a URL path segment or a dotted name fits). */
export const RPC_METHOD = /^[A-Za-z0-9_.:/-]{1,128}$/;

export type DecodeResult =
  | { ok: true; frame: ClientFrame }
  /** `id` is set when the frame had a usable id, so the error can be sent as a reply. */
  | { ok: false; error: ErrorBody; id?: number };

const fail = (code: ErrorBody['code'], message: string, id?: number): DecodeResult =>
  id === undefined ? { ok: false, error: { code, message } } : { ok: false, error: { code, message }, id };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Whether `value` nests arrays/objects deeper than `limit` levels (the value
 * itself is level 1). Iterative, and stops as soon as `limit` is passed, so
 * a hostile 10^5-level document costs no more than a shallow one. Frames and
 * server API bodies share it: a document nested too deep for the recursive
 * `JSON.stringify` must never be accepted, stored, and fail later on every read.
 */
export function depthExceeds(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (d > limit) return true;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) if (typeof c === 'object' && c !== null) stack.push([c, d + 1]);
  }
  return false;
}

function parseSince(v: unknown): StreamPosition | undefined | null {
  if (v === undefined) return undefined;
  if (!isRecord(v) || !isOffset(v.offset) || typeof v.epoch !== 'string' || v.epoch.length > 64) return null;
  return { offset: v.offset, epoch: v.epoch };
}

/** The token of a `connect` frame already parsed from its wire form, or undefined when `raw` is not one. */
export function connectToken(raw: unknown): string | undefined {
  if (!isRecord(raw) || raw.type !== 'connect') return undefined;
  const { token } = raw;
  return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_CHARS ? token : undefined;
}

/** Decode one text frame from a client. Never throws. */
export function decodeClientFrame(text: string): DecodeResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail(ErrorCode.BadRequest, 'frame is not valid JSON');
  }
  return validateClientFrame(raw);
}

/**
 * Validate a client frame already parsed from its wire form (JSON text, or
 * MessagePack in `msgpack.ts`), so that both codecs accept exactly the same
 * frames and answer a bad one with the same error. Never throws.
 */
export function validateClientFrame(raw: unknown): DecodeResult {
  if (!isRecord(raw)) return fail(ErrorCode.BadRequest, 'frame must be a JSON object');
  // `ack` and `pong` carry no id and never get a reply (an `id` on them is
  // ignored); every other frame needs one. Read it first so that every later
  // error can still be a reply to it.
  const id = isId(raw.id) && raw.type !== 'ack' && raw.type !== 'pong' ? raw.id : undefined;
  if (depthExceeds(raw, MAX_JSON_DEPTH)) {
    return fail(ErrorCode.BadRequest, `frame nests deeper than ${MAX_JSON_DEPTH} levels`, id);
  }

  const type = raw.type;
  if (typeof type !== 'string') return fail(ErrorCode.BadRequest, 'frame has no string "type"', id);

  switch (type) {
    case 'pong':
      return { ok: true, frame: { type: 'pong' } };
    case 'ack': {
      if (!isValidChannel(raw.channel)) return fail(ErrorCode.BadRequest, 'ack needs a valid "channel"');
      if (!isOffset(raw.offset)) return fail(ErrorCode.BadRequest, 'ack needs a non-negative integer "offset"');
      return { ok: true, frame: { type: 'ack', channel: raw.channel, offset: raw.offset } };
    }
    case 'subscribe':
    case 'unsubscribe':
    case 'publish':
    case 'send':
    case 'ping':
    case 'refresh':
    case 'rpc':
      break;
    default:
      return fail(ErrorCode.BadRequest, `unknown frame type "${type.slice(0, 32)}"`, id);
  }

  if (id === undefined) {
    return fail(ErrorCode.BadRequest, `"${type}" needs an "id": a non-negative integer`);
  }

  switch (type) {
    case 'ping':
      return { ok: true, frame: { type: 'ping', id } };
    case 'refresh': {
      if (typeof raw.token !== 'string' || raw.token.length === 0 || raw.token.length > MAX_TOKEN_CHARS) {
        return fail(ErrorCode.BadRequest, `refresh needs a "token": a string of 1-${MAX_TOKEN_CHARS} characters`, id);
      }
      return { ok: true, frame: { type: 'refresh', id, token: raw.token } };
    }
    case 'rpc': {
      if (typeof raw.method !== 'string' || !RPC_METHOD.test(raw.method)) {
        return fail(ErrorCode.BadRequest, 'rpc needs a "method": 1-128 characters of A-Za-z0-9_.:/-', id);
      }
      if (!('data' in raw)) return fail(ErrorCode.BadRequest, 'rpc needs "data"', id);
      return { ok: true, frame: { type: 'rpc', id, method: raw.method, data: raw.data } };
    }
    case 'send': {
      if (!isValidUserId(raw.user)) return fail(ErrorCode.BadRequest, 'send needs a valid "user"', id);
      if (!('data' in raw)) return fail(ErrorCode.BadRequest, 'send needs "data"', id);
      return { ok: true, frame: { type: 'send', id, user: raw.user, data: raw.data } };
    }
    default: {
      if (typeof raw.channel !== 'string') return fail(ErrorCode.BadRequest, `${type} needs a string "channel"`, id);
      if (!isValidChannel(raw.channel)) {
        return fail(ErrorCode.BadRequest, 'channel name must be 1-255 characters of A-Za-z0-9_-.:@=,', id);
      }
      const channel = raw.channel;
      if (type === 'unsubscribe') return { ok: true, frame: { type, id, channel } };
      if (type === 'publish') {
        if (!('data' in raw)) return fail(ErrorCode.BadRequest, 'publish needs "data"', id);
        return { ok: true, frame: { type, id, channel, data: raw.data } };
      }
      const since = parseSince(raw.since);
      if (since === null) {
        return fail(ErrorCode.BadRequest, '"since" must be {offset: non-negative integer, epoch: string}', id);
      }
      return { ok: true, frame: since ? { type: 'subscribe', id, channel, since } : { type: 'subscribe', id, channel } };
    }
  }
}

/** Encode a server frame. Publications are encoded once and the bytes shared by every subscriber. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** The `message` frame for a publication, as text. */
export function encodeMessage(pub: Publication): string {
  return JSON.stringify({ type: 'message', ...pub });
}
