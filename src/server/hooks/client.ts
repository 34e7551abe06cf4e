/**
 * The one HTTP client of the backend hooks (SPEC "Backend hooks and
 * events"): a POST of JSON, signed like the webhook, within a timeout, with
 * a bounded number in flight on this node. Every way a hook can fail ends in
 * a `SwitchboardError`: the action it guards is refused, never let through.
 */
import http from 'node:http';
import https from 'node:https';
import { ErrorCode, SwitchboardError, WEBHOOK_SIGNATURE_HEADER } from '../../protocol/index.js';
import { webhookSignature } from '../../server-sdk/webhook.js';
import type { Metrics } from '../metrics.js';

/** The hooks of the SPEC; the label of their metrics. */
export type HookName = 'connect' | 'subscribe' | 'publish' | 'rpc' | 'refresh';

/** Largest answer body read from a backend; a bigger one is nonsense. */
export const MAX_HOOK_ANSWER_BYTES = 1024 * 1024;
/** Longest backend error message passed on to the client. */
const MAX_MESSAGE_CHARS = 200;

export interface HookClientOptions {
  /** HMAC key of `X-Switchboard-Signature`; none: requests go unsigned. */
  secret?: string;
  /** Milliseconds a request may take, answer read in full included. */
  timeoutMs: number;
  /** Requests in flight at most; past it a call fails at once with `unavailable`. */
  maxInFlight: number;
}

/** The error code of a 4xx answer: its own where the protocol has one, `bad_request` otherwise. */
const CODE_OF_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: ErrorCode.BadRequest,
  401: ErrorCode.Unauthorized,
  403: ErrorCode.Forbidden,
  404: ErrorCode.NotFound,
  413: ErrorCode.TooLarge,
  429: ErrorCode.RateLimited,
};

/** An answer's status and body, read in full (or why not). */
type Answer = { status: number; body: string } | { failed: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The message a backend gave with a refusal (`{error: {message}}`, `{error: "..."}` or `{message}`), if any. */
function messageOf(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  const error = parsed.error;
  const message = isRecord(error) ? error.message : typeof error === 'string' ? error : parsed.message;
  return typeof message === 'string' && message.length > 0 ? message.slice(0, MAX_MESSAGE_CHARS) : undefined;
}

export class HookClient {
  private inFlight = 0;
  /** Keep-alive connections to the backends, at most `maxInFlight` sockets each. */
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(
    private readonly options: HookClientOptions,
    private readonly metrics: Metrics,
  ) {
    const agent = { keepAlive: true, maxSockets: options.maxInFlight, maxFreeSockets: Math.min(options.maxInFlight, 64) };
    this.agents = { http: new http.Agent(agent), https: new https.Agent(agent) };
  }

  /** Requests this node has at backends now. */
  get pending(): number {
    return this.inFlight;
  }

  /**
   * POST `payload` to the `hook` at `url`: the 2xx answer's JSON object, or a
   * `SwitchboardError` — a 4xx answer's code, and `unavailable` for
   * anything else (5xx, timeout, network error, an answer that is not a JSON
   * object, too many requests in flight).
   */
  async call(hook: HookName, url: string, payload: unknown): Promise<Record<string, unknown>> {
    if (this.inFlight >= this.options.maxInFlight) {
      this.metrics.hookRequests.inc({ hook, outcome: 'busy' });
      throw new SwitchboardError(ErrorCode.Unavailable, `the ${hook} hook has too many requests in flight: try again`);
    }
    this.inFlight++;
    const stop = this.metrics.hookDuration.startTimer({ hook });
    let outcome: string = ErrorCode.Unavailable;
    try {
      const answer = await this.post(url, JSON.stringify(payload));
      const result = this.judge(hook, answer);
      outcome = 'ok';
      return result;
    } catch (err) {
      if (err instanceof SwitchboardError) outcome = err.code;
      throw err;
    } finally {
      this.inFlight--;
      stop();
      this.metrics.hookRequests.inc({ hook, outcome });
    }
  }

  /** Close the idle keep-alive connections. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private judge(hook: HookName, answer: Answer): Record<string, unknown> {
    if ('failed' in answer) throw new SwitchboardError(ErrorCode.Unavailable, `the ${hook} hook is unavailable: ${answer.failed}`);
    const { status, body } = answer;
    if (status >= 400 && status < 500) {
      const code = CODE_OF_STATUS[status] ?? ErrorCode.BadRequest;
      throw new SwitchboardError(code, messageOf(body) ?? `the ${hook} hook answered ${status}`);
    }
    if (status < 200 || status >= 300) throw new SwitchboardError(ErrorCode.Unavailable, `the ${hook} hook answered ${status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    if (!isRecord(parsed)) throw new SwitchboardError(ErrorCode.Unavailable, `the ${hook} hook answered something that is not a JSON object`);
    return parsed;
  }

  /** One POST, settled within the timeout; never rejects. */
  private post(url: string, body: string): Promise<Answer> {
    return new Promise((resolve) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        resolve({ failed: 'bad URL' });
        return;
      }
      const secure = target.protocol === 'https:';
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      };
      if (this.options.secret !== undefined) headers[WEBHOOK_SIGNATURE_HEADER] = webhookSignature(this.options.secret, body);
      let settled = false;
      const settle = (answer: Answer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(answer);
      };
      const req = (secure ? https : http).request(target, { method: 'POST', headers, agent: secure ? this.agents.https : this.agents.http });
      const timer = setTimeout(() => {
        settle({ failed: `no answer within ${this.options.timeoutMs} ms` });
        req.destroy();
      }, this.options.timeoutMs);
      req.on('error', (err) => settle({ failed: err.message }));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_HOOK_ANSWER_BYTES) {
            settle({ failed: `answer larger than ${MAX_HOOK_ANSWER_BYTES} bytes` });
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => settle({ failed: err.message }));
      });
      req.end(body);
    });
  }
}
