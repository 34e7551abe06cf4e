/**
 * What a control message from another node must look like before this node
 * acts on it. The broker's control channel is not trusted: anyone who can
 * publish there (a Redis user, a NATS client) could otherwise add a node with
 * hostile text in its id to the admin view and the hash ring, or point
 * clients at any URL. So every field is checked (ids in a safe alphabet,
 * URLs of the expected schemes, numbers finite and bounded) and the message
 * is rebuilt from the checked fields alone; anything else is refused with a
 * reason that is counted.
 */
import { isValidChannel, isValidUserId, type ErrorBody, type MemberFrame } from '../protocol/index.js';
import type { ClusterRequest, ControlMessage, NodeInfo } from './messages.js';

/** Why a control message was dropped: the `reason` label of `switchboard_control_rejected_total`. */
export const CONTROL_REJECT_REASONS = ['malformed', 'invalid', 'unsigned', 'bad_signature', 'stale', 'replayed'] as const;
export type ControlRejectReason = (typeof CONTROL_REJECT_REASONS)[number];

export type CheckedControl = { ok: true; msg: ControlMessage } | { ok: false; reason: ControlRejectReason; detail: string };

/** Largest control payload accepted; a heartbeat is well under 1 KiB. */
export const MAX_CONTROL_BYTES = 64 * 1024;
/** Node ids: `--node-id`'s alphabet; longer than its 64 so that worker ids (`<id>-w<n>`) fit. */
const NODE_ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** Routing and broker names: short lower-case words. */
const WORD_RE = /^[a-z][a-z0-9_-]{0,31}$/;
/** Advertised URLs (`address`, `url`) at most this long. */
export const MAX_URL_CHARS = 2048;
/** Error texts stay short. */
const MAX_ERROR_CODE_CHARS = 64;
const MAX_ERROR_MESSAGE_CHARS = 1024;
const MAX_REASON_BYTES = 120;
/** Rates and latencies above this are nonsense, not load. */
const MAX_FIGURE = 1e12;

type Rec = Record<string, unknown>;

const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isFigure = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_FIGURE;

/** Whether `v` is a node id as nodes send them. */
export function isNodeId(v: unknown): v is string {
  return typeof v === 'string' && NODE_ID_RE.test(v);
}

/** Whether `v` is an absolute URL of one of `schemes` (`ws:`, …), at most `MAX_URL_CHARS` long, without user or password. */
export function isUrlOf(v: unknown, schemes: readonly string[]): v is string {
  if (typeof v !== 'string' || v.length > MAX_URL_CHARS) return false;
  try {
    const url = new URL(v);
    return schemes.includes(url.protocol) && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

const WS_SCHEMES = ['ws:', 'wss:'];
const HTTP_SCHEMES = ['http:', 'https:'];

/** A heartbeat's node, rebuilt from its checked fields (others are left out), or what is wrong with it. */
function toNodeInfo(v: unknown, from: string): NodeInfo | string {
  if (!isRecord(v)) return 'heartbeat without info';
  if (v.id !== from) return 'heartbeat info.id is not its sender';
  if (!isUrlOf(v.address, HTTP_SCHEMES)) return 'heartbeat address is not an http(s) URL';
  if (!isUrlOf(v.url, WS_SCHEMES)) return 'heartbeat url is not a ws(s) URL';
  if (typeof v.routing !== 'string' || !WORD_RE.test(v.routing)) return 'heartbeat routing is not a word';
  if (!isCount(v.connections) || !isCount(v.subscriptions) || !isCount(v.uptime)) return 'heartbeat counts are not whole numbers';
  if (typeof v.ready !== 'boolean' || typeof v.draining !== 'boolean') return 'heartbeat ready/draining are not booleans';
  const info: NodeInfo = {
    id: from,
    address: v.address,
    url: v.url,
    routing: v.routing,
    connections: v.connections,
    subscriptions: v.subscriptions,
    uptime: v.uptime,
    ready: v.ready,
    draining: v.draining,
  };
  if (v.broker !== undefined) {
    if (typeof v.broker !== 'string' || !WORD_RE.test(v.broker)) return 'heartbeat broker is not a word';
    info.broker = v.broker;
  }
  for (const key of ['messagesInPerSec', 'messagesOutPerSec', 'latencyP50Ms', 'latencyP99Ms'] as const) {
    const figure = v[key];
    if (figure === undefined) continue;
    if (!isFigure(figure)) return `heartbeat ${key} is not a finite figure`;
    info[key] = figure;
  }
  return info;
}

function toRequest(v: unknown): ClusterRequest | string {
  if (!isRecord(v) || v.kind !== 'disconnect') return 'unknown request';
  if (!isValidUserId(v.user)) return 'request user is not a user id';
  if (!Number.isInteger(v.code) || (v.code as number) < 4000 || (v.code as number) > 4199) return 'request code is not 4000-4199';
  if (typeof v.reason !== 'string' || Buffer.byteLength(v.reason) > MAX_REASON_BYTES) return 'request reason is not a short string';
  return { kind: 'disconnect', user: v.user, code: v.code as number, reason: v.reason };
}

function toErrorBody(v: unknown): ErrorBody | string {
  if (!isRecord(v) || typeof v.code !== 'string' || typeof v.message !== 'string') return 'response error is not {code, message}';
  if (v.code.length > MAX_ERROR_CODE_CHARS || v.message.length > MAX_ERROR_MESSAGE_CHARS) return 'response error is too long';
  return { code: v.code as ErrorBody['code'], message: v.message };
}

function toMemberFrame(v: unknown): MemberFrame | string {
  if (!isRecord(v) || (v.type !== 'join' && v.type !== 'leave')) return 'member frame is not join or leave';
  if (!isValidChannel(v.channel) || !isValidUserId(v.user)) return 'member frame channel or user is invalid';
  // Session ids are UUIDs: the node id alphabet holds them.
  if (typeof v.session !== 'string' || !NODE_ID_RE.test(v.session)) return 'member frame session is invalid';
  return { type: v.type, channel: v.channel, user: v.user, session: v.session };
}

/** The message once its type's fields are checked, or what is wrong with it. */
function toMessage(m: Rec, from: string): ControlMessage | string {
  switch (m.type) {
    case 'heartbeat': {
      const info = toNodeInfo(m.info, from);
      return typeof info === 'string' ? info : { type: 'heartbeat', info, from };
    }
    case 'leave':
    case 'swept':
      return { type: m.type, from };
    case 'request': {
      if (!isCount(m.id)) return 'request id is not a whole number';
      const request = toRequest(m.request);
      return typeof request === 'string' ? request : { type: 'request', id: m.id, request, from };
    }
    case 'response': {
      if (!isCount(m.id)) return 'response id is not a whole number';
      if (m.error === undefined) return { type: 'response', id: m.id, result: m.result, from };
      const error = toErrorBody(m.error);
      return typeof error === 'string' ? error : { type: 'response', id: m.id, error, from };
    }
    case 'member': {
      const frame = toMemberFrame(m.frame);
      return typeof frame === 'string' ? frame : { type: 'member', frame, from };
    }
    default:
      return 'unknown type';
  }
}

/** Parse and check a control message's JSON. Never throws. */
export function checkControl(json: string): CheckedControl {
  if (json.length > MAX_CONTROL_BYTES) return { ok: false, reason: 'malformed', detail: 'too large' };
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return { ok: false, reason: 'malformed', detail: 'not JSON' };
  }
  if (!isRecord(v) || typeof v.type !== 'string') return { ok: false, reason: 'malformed', detail: 'not an object with a type' };
  if (!isNodeId(v.from)) return { ok: false, reason: 'invalid', detail: 'sender is not a node id' };
  const msg = toMessage(v, v.from);
  return typeof msg === 'string' ? { ok: false, reason: 'invalid', detail: msg } : { ok: true, msg };
}
