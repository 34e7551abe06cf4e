// Small shared helpers: bounded waits, a concurrency pool, percentiles, and
// keep-alive HTTP to a node's API.
import { Agent, request } from 'node:http';
import { API_KEY, HTTP_TIMEOUT_MS, MAX_IN_FLIGHT } from './settings.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(ok: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Run `fn` over `items`, at most `limit` at once. */
export async function pooled<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Idle kept-alive sockets are closed here after this, before the node's
 * server does (Node's default keep-alive timeout, 5 s), so that a request
 * rarely meets a socket the node is closing.
 */
const IDLE_SOCKET_MS = 4_000;
/** Sends again of a request that met a closing kept-alive socket (see `http`). */
const STALE_RETRIES = 2;

export const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT, timeout: IDLE_SOCKET_MS });

/**
 * One HTTP request to a node on 127.0.0.1, with a JSON body when given.
 * A kept-alive socket the node closed as idle just as we reused it fails
 * with ECONNRESET before the node read anything (see `request.reusedSocket`
 * in Node's docs): that one case is sent again, at most `STALE_RETRIES`
 * times (on a loaded machine the next idle socket may be just as stale).
 * Errors say which attempt failed.
 */
export async function http(method: string, port: number, path: string, body?: string): Promise<{ status: number; text: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await httpOnce(method, port, path, body);
    } catch (err) {
      if (!(err as { staleSocket?: boolean }).staleSocket || attempt >= STALE_RETRIES) {
        const e = err as Error;
        e.message = `${e.message} (${(err as { staleSocket?: boolean }).staleSocket ? 'a kept-alive socket closing, ' : ''}attempt ${attempt + 1})`;
        throw e;
      }
    }
  }
}

function httpOnce(method: string, port: number, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${API_KEY}` };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    const req = request({ host: '127.0.0.1', port, path, method, agent, headers, timeout: HTTP_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} :${port}${path}: no answer in ${HTTP_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(req.reusedSocket && err.code === 'ECONNRESET' ? Object.assign(err, { staleSocket: true }) : err);
    });
    req.end(body);
  });
}

export async function getJson<T>(port: number, path: string): Promise<T> {
  const res = await http('GET', port, path);
  if (res.status !== 200) throw new Error(`GET :${port}${path} → ${res.status} ${res.text}`);
  return JSON.parse(res.text) as T;
}
