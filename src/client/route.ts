/**
 * `routeResolver`: a `resolveUrl` for `SwitchboardClient` that asks the
 * cluster which node owns a user (`GET /api/route?user=<id>`, hash-ring
 * routing) so the client connects there directly instead of being
 * redirected with 4102.
 */
import { isValidUserId } from '../protocol/index.js';
import { redirectProblem } from './transport.js';

export interface RouteResolverInit {
  /** The `fetch` to use. Default: the global `fetch` (browsers, Node ≥ 18). */
  fetch?: typeof fetch;
  /** How long one look-up may take, ms. Default 5000. */
  timeoutMs?: number;
  /** Extra request headers, e.g. `Authorization` when a proxy in front of the API wants one. Default: none. */
  headers?: Record<string, string>;
}

/**
 * A resolver that asks `GET <apiBase>/api/route?user=<user>` for the owner
 * node's WebSocket URL. The promise it returns resolves with the answer's
 * `url` (an absolute `ws:`/`wss:` URL) and rejects on a network error, a
 * timeout, a non-2xx status, or an answer without such a `url` (or with a
 * `ws:` one when `apiBase` is `https:`: no downgrade).
 * `apiBase` is the node or load balancer's HTTP address
 * (`http://localhost:8080`); a relative one resolves against the page.
 * Throws `TypeError` at once for a malformed `apiBase`, an invalid user id,
 * a bad `timeoutMs`, or no `fetch`.
 */
export function routeResolver(apiBase: string, user: string, init: RouteResolverInit = {}): () => Promise<string> {
  if (!isValidUserId(user)) throw new TypeError(`routeResolver: invalid user id ${JSON.stringify(user)}`);
  const doFetch = init.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
  if (typeof doFetch !== 'function') throw new TypeError('routeResolver: no global fetch; pass init.fetch');
  const timeoutMs = init.timeoutMs ?? 5000;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new TypeError(`routeResolver: "timeoutMs" must be a positive number, got ${String(timeoutMs)}`);
  }
  const location = (globalThis as { location?: { href: string } }).location;
  const endpoint = location ? new URL(apiBase, location.href) : new URL(apiBase);
  endpoint.pathname = `${endpoint.pathname.replace(/\/+$/, '')}/api/route`;
  endpoint.search = '';
  endpoint.searchParams.set('user', user);
  const href = endpoint.toString();
  const headers = { accept: 'application/json', ...init.headers };

  return async () => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const res = await doFetch(href, { headers, signal: abort.signal });
      if (!res.ok) throw new Error(`route lookup for ${user} failed: HTTP ${res.status}`);
      const body = (await res.json()) as { url?: unknown } | null;
      const url = typeof body === 'object' && body !== null ? body.url : undefined;
      if (typeof url !== 'string') throw new Error(`route lookup for ${user}: the answer has no ws:/wss: "url"`);
      const problem = redirectProblem(href, url);
      if (problem !== undefined) throw new Error(`route lookup for ${user}: ${problem}`);
      return url;
    } catch (err) {
      if (abort.signal.aborted) throw new Error(`route lookup for ${user} timed out after ${timeoutMs} ms`, { cause: err });
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };
}
