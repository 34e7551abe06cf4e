/** Options of `SwitchboardApi`, their defaults, and their checks (bad arguments throw at once). */

export interface SwitchboardApiOptions {
  /**
   * The node(s) to call, e.g. `http://localhost:8080`. Any node answers for
   * the whole cluster, so with several the SDK moves to the next one when a
   * node does not answer, times out, or says 503. Required (at least one).
   */
  baseUrl: string | readonly string[];
  /** Sent as `Authorization: Bearer <apiKey>`. Default: none (only for `--insecure` nodes and `route`). */
  apiKey?: string;
  /** Milliseconds one HTTP attempt may take before it is aborted. Default 5000. */
  timeout?: number;
  /** Milliseconds a whole call may take, all retries and backoff included. Default 15000. */
  deadline?: number;
  /** Retries after the first attempt (so at most `retries + 1` requests), within `deadline`. Default 5. */
  retries?: number;
  /** Backoff window before the first retry, in ms; it doubles per retry (full jitter). Default 50. */
  backoffMin?: number;
  /** Largest backoff window in ms. Default 2000. */
  backoffMax?: number;
  /**
   * Publish and send requests under way at once before further calls wait
   * and leave together as one `POST /api/batch` (each keeps its own result,
   * error and idempotency key; one request per channel under way at a time,
   * so order per channel is kept). 0: every call is its own request, sent at
   * once, in no order. Default 16.
   */
  maxInFlight?: number;
  /** The fetch to use. Default: the global `fetch` (Node 18+). */
  fetch?: typeof fetch;
  /** Uniform numbers in [0, 1) for the jitter. Default `Math.random`; tests inject their own. */
  random?: () => number;
}

export interface ResolvedApiOptions {
  baseUrls: string[];
  apiKey: string | undefined;
  timeout: number;
  deadline: number;
  retries: number;
  backoffMin: number;
  backoffMax: number;
  maxInFlight: number;
  fetch: typeof fetch;
  random: () => number;
}

function positive(name: string, v: number | undefined, fallback: number, allowZero = false): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new TypeError(`SwitchboardApi: "${name}" must be a ${allowZero ? 'non-negative' : 'positive'} number, not ${String(v)}`);
  }
  return v;
}

/** Check the options and fill in defaults. Throws `TypeError` for a bad one. */
export function resolveApiOptions(options: SwitchboardApiOptions): ResolvedApiOptions {
  const given = typeof options?.baseUrl === 'string' ? [options.baseUrl] : [...(options?.baseUrl ?? [])];
  if (given.length === 0) throw new TypeError('SwitchboardApi: "baseUrl" is required, e.g. "http://localhost:8080"');
  const baseUrls = given.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new TypeError(`SwitchboardApi: "baseUrl" ${JSON.stringify(u)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`SwitchboardApi: "baseUrl" must be http(s), not ${url.protocol}`);
    }
    return url.href.replace(/\/+$/, '');
  });
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== 'function') throw new TypeError('SwitchboardApi: no global fetch (Node 18+); pass the "fetch" option');
  const retries = positive('retries', options.retries, 5, true);
  if (!Number.isInteger(retries)) throw new TypeError('SwitchboardApi: "retries" must be a whole number');
  const backoffMin = positive('backoffMin', options.backoffMin, 50);
  const maxInFlight = positive('maxInFlight', options.maxInFlight, 16, true);
  if (!Number.isInteger(maxInFlight)) throw new TypeError('SwitchboardApi: "maxInFlight" must be a whole number');
  return {
    baseUrls,
    apiKey: options.apiKey,
    timeout: positive('timeout', options.timeout, 5000),
    deadline: positive('deadline', options.deadline, 15_000),
    retries,
    backoffMin,
    backoffMax: Math.max(backoffMin, positive('backoffMax', options.backoffMax, 2000)),
    maxInFlight,
    fetch: fetchFn,
    random: options.random ?? Math.random,
  };
}
