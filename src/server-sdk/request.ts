/**
 * One server API call as HTTP requests: each attempt bounded by `timeout`,
 * the whole call by `deadline`; on a network error, a timeout, or a 502/503/504
 * the next base URL is tried after a full-jitter backoff — but only when the
 * call is safe to repeat. A 4xx is the caller's mistake and is never retried.
 */
import { backoffDelay } from '../shared/backoff.js';
import { sleep } from '../shared/time.js';
import { ErrorCode, type ErrorBody } from '../protocol/index.js';
import { codeForStatus, isErrorCode, SwitchboardApiError } from './errors.js';
import type { ResolvedApiOptions } from './options.js';

export interface ApiRequest {
  method: 'GET' | 'POST';
  /** Path and query, e.g. `/api/history/room?limit=10`. */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * Safe to send again after an attempt whose outcome is unknown: GETs,
   * `disconnect`, and publishes that carry an idempotency key. Anything else
   * gets one attempt, since a lost answer may hide a stored message.
   */
  retryable: boolean;
  /** Aborts the call (every attempt and the backoff); rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Statuses that mean "this node cannot serve now", not "this request is wrong". */
const RETRY_STATUSES = new Set([502, 503, 504]);

type Failure = { kind: 'answer'; status: number; error: ErrorBody } | { kind: 'network'; cause: unknown; timedOut: boolean };

/** The `{error: {code, message}}` of an answer, or one made up from its status when the body has none (a proxy's page). */
function errorOf(status: number, body: unknown): ErrorBody {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e: unknown = body.error;
    if (typeof e === 'object' && e !== null && 'code' in e && isErrorCode(e.code)) {
      const message = 'message' in e && typeof e.message === 'string' ? e.message : `HTTP ${status}`;
      return { code: e.code, message };
    }
  }
  return { code: codeForStatus(status), message: `HTTP ${status}` };
}

function parse(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Sends requests to a list of nodes, remembering which one answered last so later calls start there. */
export class RequestRunner {
  private current = 0;

  constructor(private readonly opts: ResolvedApiOptions) {}

  /** The base URL the next call starts with. */
  get baseUrl(): string {
    return this.opts.baseUrls[this.current] ?? '';
  }

  async run(req: ApiRequest): Promise<HttpAnswer> {
    const { opts } = this;
    const deadlineAt = Date.now() + opts.deadline;
    const headers: Record<string, string> = { accept: 'application/json', ...req.headers };
    if (opts.apiKey !== undefined) headers.authorization = `Bearer ${opts.apiKey}`;
    let body: string | undefined;
    if (req.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.body);
    }
    let attempts = 0;
    let last: Failure | undefined;
    for (;;) {
      const timeout = Math.min(opts.timeout, deadlineAt - Date.now());
      if (timeout < 1) break;
      attempts++;
      const base = this.baseUrl;
      const timer = AbortSignal.timeout(timeout);
      const signal = req.signal ? AbortSignal.any([timer, req.signal]) : timer;
      try {
        const res = await opts.fetch(base + req.path, { method: req.method, headers, body, signal });
        const answer: HttpAnswer = { status: res.status, headers: res.headers, body: parse(await res.text()) };
        if (res.ok) return answer;
        const error = errorOf(res.status, answer.body);
        if (!RETRY_STATUSES.has(res.status)) throw new SwitchboardApiError(error.code, error.message, res.status, attempts);
        last = { kind: 'answer', status: res.status, error };
      } catch (err) {
        if (err instanceof SwitchboardApiError) throw err;
        if (req.signal?.aborted) throw req.signal.reason;
        last = { kind: 'network', cause: err, timedOut: timer.aborted };
      }
      // This node could not serve: the next call (or retry) starts at the next one.
      if (this.opts.baseUrls[this.current] === base) this.current = (this.current + 1) % opts.baseUrls.length;
      if (!req.retryable || attempts > opts.retries) break;
      const delay = backoffDelay(attempts - 1, opts.backoffMin, opts.backoffMax, opts.random);
      if (Date.now() + delay + 1 >= deadlineAt) break;
      try {
        await sleep(delay, undefined, { signal: req.signal });
      } catch {
        // Only an abort ends the sleep early: the caller gets its own reason, as from the request itself.
        throw req.signal?.reason;
      }
    }
    throw finalError(last, attempts, opts.deadline);
  }
}

function finalError(last: Failure | undefined, attempts: number, deadline: number): SwitchboardApiError {
  const tried = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
  if (last?.kind === 'answer') {
    return new SwitchboardApiError(last.error.code, `${last.error.message} (${tried})`, last.status, attempts);
  }
  const why = last === undefined
    ? `deadline of ${deadline} ms passed`
    : last.timedOut
      ? 'the request timed out'
      : `${last.cause instanceof Error ? last.cause.message : String(last.cause)}`;
  return new SwitchboardApiError(ErrorCode.Unavailable, `no node answered: ${why} (${tried})`, 0, attempts, {
    cause: last?.kind === 'network' ? last.cause : undefined,
  });
}
