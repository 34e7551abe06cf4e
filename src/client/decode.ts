/**
 * Decoding of server frames on the client. The server is a peer: a frame
 * that does not have the shape the protocol promises is reported and
 * dropped, never trusted and never thrown.
 */
import type { DisconnectFrame, ErrorBody, ErrorCode, Publication, ServerFrame, WelcomeFrame } from '../protocol/index.js';
import { parseMsgpack, type WireCodec } from '../protocol/msgpack.js';

export type ServerDecodeResult = { ok: true; frame: ServerFrame } | { ok: false; reason: string };

type Rec = Record<string, unknown>;

const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const optional = <T>(v: unknown, check: (x: unknown) => x is T): boolean => v === undefined || check(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** A publication as it appears in `message` frames and in `messages` arrays, or undefined. */
export function toPublication(v: unknown): Publication | undefined {
  if (!isRecord(v) || !isString(v.channel)) return undefined;
  if (!optional(v.offset, isInt) || !optional(v.epoch, isString) || !optional(v.from, isString)) return undefined;
  const pub: Publication = { channel: v.channel, data: v.data };
  if (v.offset !== undefined) pub.offset = v.offset as number;
  if (v.epoch !== undefined) pub.epoch = v.epoch as string;
  if (v.from !== undefined) pub.from = v.from as string;
  return pub;
}

/** An array of publications, or undefined when any element is malformed. A missing array is empty. */
export function toPublications(v: unknown): Publication[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return undefined;
  const out: Publication[] = [];
  for (const item of v) {
    const pub = toPublication(item);
    if (!pub) return undefined;
    out.push(pub);
  }
  return out;
}

function toErrorBody(v: unknown): ErrorBody | undefined {
  if (!isRecord(v) || !isString(v.code)) return undefined;
  return { code: v.code as ErrorCode, message: isString(v.message) ? v.message : v.code };
}

function toWelcome(r: Rec): WelcomeFrame | undefined {
  const messages = toPublications(r.messages);
  if (!isString(r.session) || !isString(r.user) || !isString(r.channel) || !messages) return undefined;
  if (typeof r.ping !== 'number' || !(r.ping >= 0)) return undefined;
  const welcome: WelcomeFrame = {
    type: 'welcome',
    session: r.session,
    node: isString(r.node) ? r.node : '',
    user: r.user,
    channel: r.channel,
    offset: isInt(r.offset) ? r.offset : 0,
    epoch: isString(r.epoch) ? r.epoch : '',
    recovered: r.recovered === true,
    messages,
    ping: r.ping,
  };
  if (isInt(r.expires)) welcome.expires = r.expires;
  return welcome;
}

/**
 * Decode one frame from the server in the connection's codec: a text frame
 * on `json`, a binary one (`ArrayBuffer` or `Uint8Array`) on `msgpack`; a
 * frame of the other kind is malformed. Never throws.
 */
export function decodeServerFrame(data: unknown, codec: WireCodec = 'json'): ServerDecodeResult {
  if (codec === 'msgpack') {
    if (typeof data === 'string') return { ok: false, reason: 'text frame on a MessagePack connection' };
    if (!(data instanceof ArrayBuffer) && !(data instanceof Uint8Array)) {
      return { ok: false, reason: 'binary frame that is neither an ArrayBuffer nor a Uint8Array' };
    }
    const parsed = parseMsgpack(data);
    return parsed.ok ? validateServerFrame(parsed.value) : { ok: false, reason: parsed.reason };
  }
  if (typeof data !== 'string') return { ok: false, reason: 'binary frame' };
  let r: unknown;
  try {
    r = JSON.parse(data);
  } catch {
    return { ok: false, reason: 'frame is not valid JSON' };
  }
  return validateServerFrame(r);
}

/** Check a server frame already parsed from its wire form; the same checks for both codecs. */
function validateServerFrame(r: unknown): ServerDecodeResult {
  if (!isRecord(r) || !isString(r.type)) return { ok: false, reason: 'frame has no string "type"' };
  const bad = (what: string): ServerDecodeResult => ({ ok: false, reason: `malformed "${what}" frame` });
  switch (r.type) {
    case 'welcome': {
      const frame = toWelcome(r);
      return frame ? { ok: true, frame } : bad('welcome');
    }
    case 'message': {
      const pub = toPublication(r);
      return pub ? { ok: true, frame: { type: 'message', ...pub } } : bad('message');
    }
    case 'reply': {
      if (!isInt(r.id)) return bad('reply');
      if (r.error !== undefined) {
        const error = toErrorBody(r.error);
        return error ? { ok: true, frame: { type: 'reply', id: r.id, error } } : bad('reply');
      }
      return { ok: true, frame: { type: 'reply', id: r.id, result: r.result } };
    }
    case 'error': {
      const error = toErrorBody(r.error);
      return error ? { ok: true, frame: { type: 'error', error } } : bad('error');
    }
    case 'ping':
      return { ok: true, frame: { type: 'ping' } };
    case 'pong':
      return isInt(r.id) ? { ok: true, frame: { type: 'pong', id: r.id } } : bad('pong');
    case 'disconnect': {
      if (!isInt(r.code)) return bad('disconnect');
      const reason = isString(r.reason) ? r.reason : '';
      const frame: DisconnectFrame = { type: 'disconnect', code: r.code, reason, reconnect: r.reconnect !== false };
      // Only passed through; the client decides whether it is a URL it will follow.
      if (isString(r.url)) frame.url = r.url;
      return { ok: true, frame };
    }
    case 'join':
    case 'leave':
      if (!isString(r.channel) || !isString(r.user) || !isString(r.session)) return bad(r.type);
      return { ok: true, frame: { type: r.type, channel: r.channel, user: r.user, session: r.session } };
    default:
      return { ok: false, reason: `unknown frame type "${r.type.slice(0, 32)}"` };
  }
}
