/**
 * The `connect` hook (SPEC "Backend hooks and events"): an upgrade without a
 * valid token — a browser with a session cookie — becomes a POST of
 * `{ip, headers, query}` to `--connect-hook`, and the backend's answer says
 * who the client is, or refuses it. An answer that does not make sense is a
 * failure of the hook: the upgrade is refused, never let through.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCode, isValidUserId, SwitchboardError } from '../../protocol/index.js';
import type { ConnectHookHeaders, ConnectHookRequest } from '../../server-sdk/hooks.js';
import type { Identity } from '../auth/token.js';
import type { HookClient } from './client.js';

/** Largest `meta` kept on a session, as JSON: it is held for the session's life and sent with each refresh. */
export const MAX_META_BYTES = 4096;
/** Most channel patterns one answer may grant (a token has no such bound, but its size has one). */
export const MAX_HOOK_CHANNELS = 1000;
/** An `expireAt` past this is milliseconds given for seconds (1e11 s is the year 5138). */
const MAX_EXPIRE_AT = 1e11;

/** The request headers passed on to the backend, when the client sent them. */
const PASSED_HEADERS = ['cookie', 'authorization', 'origin', 'user-agent'] as const;

/** A nonsense answer of `hook`: the action is refused as `unavailable`, as for a hook that failed. */
function nonsense(hook: string, what: string): SwitchboardError {
  return new SwitchboardError(ErrorCode.Unavailable, `the ${hook} hook answered nonsense: ${what}`);
}

/**
 * `expireAt` of a hook's answer as Unix seconds: a finite number after
 * `nowMs` and below 1e11 (a value in milliseconds is a mistake, not a
 * session of a thousand centuries); fractions are cut, ending it earlier.
 */
export function checkExpireAt(hook: string, value: unknown, nowMs: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw nonsense(hook, '"expireAt" must be a number (Unix seconds)');
  if (value >= MAX_EXPIRE_AT) throw nonsense(hook, '"expireAt" must be Unix seconds, not milliseconds');
  const seconds = Math.floor(value);
  if (seconds * 1000 <= nowMs) throw nonsense(hook, '"expireAt" is not in the future');
  return seconds;
}

/** The identity a connect hook's 200 answer gives, or a `SwitchboardError` (`unavailable`) for one that makes no sense. */
export function connectIdentity(answer: Record<string, unknown>, nowMs: number): Identity {
  const { user, channels, expireAt, meta } = answer;
  if (!isValidUserId(user)) throw nonsense('connect', '"user" must be a user id (1-250 of A-Za-z0-9_-.:@=,)');
  if (channels !== undefined) {
    if (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string' && c.length > 0)) {
      throw nonsense('connect', '"channels" must be an array of channel patterns');
    }
    if (channels.length > MAX_HOOK_CHANNELS) throw nonsense('connect', `"channels" has more than ${MAX_HOOK_CHANNELS} patterns`);
  }
  const identity: Identity = { user, channels: (channels as string[] | undefined) ?? [], meta: meta ?? null };
  if (expireAt !== undefined) identity.exp = checkExpireAt('connect', expireAt, nowMs);
  if (meta !== undefined && Buffer.byteLength(JSON.stringify(meta)) > MAX_META_BYTES) {
    throw nonsense('connect', `"meta" is larger than ${MAX_META_BYTES} bytes of JSON`);
  }
  return identity;
}

/** The connect hook's request for an upgrade from `ip`. */
export function connectRequest(req: IncomingMessage, url: URL, ip: string): ConnectHookRequest {
  const headers: ConnectHookHeaders = {};
  for (const name of PASSED_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) if (!(key in query)) query[key] = value;
  return { ip, headers, query };
}

export class ConnectHook {
  constructor(
    private readonly client: HookClient,
    private readonly url: string,
  ) {}

  /**
   * Who the client of this upgrade is, by the backend's word. Throws a
   * `SwitchboardError`: `unauthorized` or `forbidden` when the backend
   * answered 401 or 403, `unavailable` for anything else that is not a
   * sensible 200 (another status, a timeout, nonsense).
   */
  async identify(request: ConnectHookRequest): Promise<Identity> {
    let answer: Record<string, unknown>;
    try {
      answer = await this.client.call('connect', this.url, request);
    } catch (err) {
      if (err instanceof SwitchboardError && (err.code === ErrorCode.Unauthorized || err.code === ErrorCode.Forbidden)) throw err;
      const why = err instanceof SwitchboardError && err.code === ErrorCode.Unavailable ? err.message : 'the connect hook refused with another status than 401 or 403';
      throw new SwitchboardError(ErrorCode.Unavailable, why);
    }
    return connectIdentity(answer, Date.now());
  }
}
