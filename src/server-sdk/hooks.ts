/**
 * Receiving Switchboard's hook requests in a business service: check the
 * signature of the raw body (the webhook's scheme), then read the request
 * as a typed object. Each hook's answer is typed here too, so that a
 * backend written in TypeScript answers what the node accepts.
 *
 * ```ts
 * const hello = parseConnectRequest(rawBody, req.headers['x-switchboard-signature'], secret);
 * ```
 */
import { verifiedJson, WebhookError } from './webhook.js';

/** The headers of an upgrade passed to the connect hook: those of them the client sent. */
export interface ConnectHookHeaders {
  cookie?: string;
  authorization?: string;
  origin?: string;
  'user-agent'?: string;
}

/** The connect hook's request: an upgrade without a valid token. */
export interface ConnectHookRequest {
  /** The client's address (behind `--trust-proxy`, the one the proxy appended to `X-Forwarded-For`). */
  ip: string;
  headers: ConnectHookHeaders;
  /** The upgrade's query parameters (the first value of each). */
  query: Record<string, string>;
}

/** The connect hook's 200 answer: who the client is. 401 or 403 refuse the upgrade instead. */
export interface ConnectHookAnswer {
  /** The user id (1-250 of `A-Za-z0-9_-.:@=,`). */
  user: string;
  /** Channel patterns (with `*`) the session may use beyond public namespaces, as a token's `channels`. */
  channels?: string[];
  /** When the session ends unless the refresh hook extends it, Unix seconds. */
  expireAt?: number;
  /** Any JSON (4 KiB at most), given back to the refresh hook. */
  meta?: unknown;
}

/** The refresh hook's request: a session the connect hook accepted, before its `expireAt`. */
export interface RefreshHookRequest {
  user: string;
  session: string;
  /** The connect hook's `meta` (`null` when it gave none). */
  meta: unknown;
}

/** The refresh hook's 200 answer; 403 ends the session (4105) instead. */
export interface RefreshHookAnswer {
  /** The session's new end, Unix seconds. */
  expireAt: number;
}

/** The rpc hook's request: a client's `rpc` frame. */
export interface RpcHookRequest {
  user: string;
  session: string;
  method: string;
  data: unknown;
}

/** The rpc hook's 200 answer: `data` is the reply. */
export interface RpcHookAnswer {
  data: unknown;
}

/** Type guards of the fields each request has, by hook. */
const SHAPES = {
  connect: (r: Record<string, unknown>): boolean =>
    typeof r.ip === 'string' && isStringRecord(r.headers) && isStringRecord(r.query),
  refresh: (r: Record<string, unknown>): boolean => typeof r.user === 'string' && typeof r.session === 'string' && 'meta' in r,
  rpc: (r: Record<string, unknown>): boolean => typeof r.user === 'string' && typeof r.session === 'string' && typeof r.method === 'string' && 'data' in r,
} as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringRecord(v: unknown): boolean {
  return isRecord(v) && Object.values(v).every((value) => typeof value === 'string');
}

/** The body of a signed request of `hook`, checked: a `WebhookError` on a bad signature or a body of another shape. */
function parseHook(hook: keyof typeof SHAPES, body: string | Uint8Array, header: string | string[] | undefined, secret: string): unknown {
  const parsed = verifiedJson(body, header, secret);
  if (!isRecord(parsed) || !SHAPES[hook](parsed)) throw new WebhookError('body', `the body is not a ${hook} hook request`);
  return parsed;
}

/** The connect hook's request, after checking its signature; throws `WebhookError` otherwise. */
export function parseConnectRequest(body: string | Uint8Array, header: string | string[] | undefined, secret: string): ConnectHookRequest {
  return parseHook('connect', body, header, secret) as ConnectHookRequest;
}

/** The refresh hook's request, after checking its signature; throws `WebhookError` otherwise. */
export function parseRefreshRequest(body: string | Uint8Array, header: string | string[] | undefined, secret: string): RefreshHookRequest {
  return parseHook('refresh', body, header, secret) as RefreshHookRequest;
}

/** The rpc hook's request, after checking its signature; throws `WebhookError` otherwise. */
export function parseRpcRequest(body: string | Uint8Array, header: string | string[] | undefined, secret: string): RpcHookRequest {
  return parseHook('rpc', body, header, secret) as RpcHookRequest;
}
