/**
 * Checks of the answers against the server API's types (`src/protocol/api.ts`):
 * a node of another version, or a proxy's page, becomes a clear `internal`
 * error instead of `undefined` deep inside the caller's code. Only the fields
 * the SDK promises are checked, and only those are kept.
 */
import {
  ErrorCode,
  type BroadcastAnswer,
  type BatchAnswer,
  type BatchResult,
  type BroadcastResult,
  type DisconnectAnswer,
  type HistoryAnswer,
  type NodeSummary,
  type PresenceAnswer,
  type PresenceMember,
  type Publication,
  type PublishAnswer,
  type RouteAnswer,
  type UserAnswer,
  type UserSession,
} from '../protocol/index.js';
import { isErrorCode, SwitchboardApiError } from './errors.js';

type Json = Record<string, unknown>;

/** Checks one value and returns it typed; `what` names it in the error. */
export type Decoder<T> = (v: unknown, what: string) => T;

/** A check for every field of `T`: a field added to the protocol's type must be checked here too. */
type Fields<T> = { [K in keyof T]-?: Decoder<T[K]> };

function bad(what: string): SwitchboardApiError {
  return new SwitchboardApiError(ErrorCode.Internal, `unexpected answer from the server API: ${what}`, 200, 1);
}

function object(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} is not an object`);
  return v as Json;
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${what} is not a number`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw bad(`${what} is not a string`);
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw bad(`${what} is not a boolean`);
  return v;
}

function list<T>(item: Decoder<T>): Decoder<T[]> {
  return (v, what) => {
    if (!Array.isArray(v)) throw bad(`${what} is not an array`);
    return v.map((e, i) => item(e, `${what}[${i}]`));
  };
}

/** An object of `T`'s fields, each checked; any other field is dropped. */
function record<T>(fields: Fields<T>): Decoder<T> {
  return (v, what) => {
    const o = object(v, what);
    const out: Json = {};
    for (const [key, check] of Object.entries(fields) as Array<[string, Decoder<unknown>]>) {
      out[key] = check(o[key], `${what}.${key}`);
    }
    return out as T;
  };
}

/** `{offset?, epoch?}`: both or neither (channels without history answer `{}`). */
export const publishAnswer: Decoder<PublishAnswer> = (v, what) => {
  const o = object(v, what);
  if (o.offset === undefined && o.epoch === undefined) return {};
  return { offset: num(o.offset, `${what}.offset`), epoch: str(o.epoch, `${what}.epoch`) };
};

/** A position, or an error whose code is one of the catalog's (`internal` for one this SDK does not know). */
const broadcastResult: Decoder<BroadcastResult> = (v, what) => {
  const o = object(v, what);
  if (o.error === undefined) return publishAnswer(o, what);
  const e = object(o.error, `${what}.error`);
  const code = isErrorCode(e.code) ? e.code : ErrorCode.Internal;
  return { error: { code, message: str(e.message, `${what}.error.message`) } };
};

/** A stored message, passed on whole once it names its channel. */
const publication: Decoder<Publication> = (v, what) => {
  const o = object(v, what);
  str(o.channel, `${what}.channel`);
  return o as unknown as Publication;
};

export const broadcastAnswer = record<BroadcastAnswer>({ results: list(broadcastResult) });

/** A batch command's result: as a broadcast's, and `replayed` kept when the node says so. */
const batchResult: Decoder<BatchResult> = (v, what) => {
  const result = broadcastResult(v, what);
  return 'error' in result || (v as Json).replayed !== true ? result : { ...result, replayed: true };
};

export const batchAnswer = record<BatchAnswer>({ results: list(batchResult) });

export const userAnswer = record<UserAnswer>({
  online: bool,
  sessions: list(record<UserSession>({ session: str, node: str })),
});

export const presenceAnswer = record<PresenceAnswer>({
  members: list(record<PresenceMember>({ user: str, session: str, node: str })),
});

export const historyAnswer = record<HistoryAnswer>({ offset: num, epoch: str, messages: list(publication) });

export const disconnectAnswer = record<DisconnectAnswer>({ sessions: num });

export const routeAnswer = record<RouteAnswer>({ user: str, node: str, url: str });

/** `/api/nodes`: each node's summary (the dashboard's optional load figures are not kept). */
export const nodesAnswer = record<{ nodes: NodeSummary[] }>({
  nodes: list(
    record<NodeSummary>({
      id: str,
      address: str,
      url: str,
      routing: str,
      connections: num,
      subscriptions: num,
      uptime: num,
      ready: bool,
      draining: bool,
    }),
  ),
});
