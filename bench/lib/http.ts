// Keep-alive HTTP to a node's API (or a peer's publish endpoint) on
// 127.0.0.1, with the bench API key.
import { Agent, request } from 'node:http';
import { API_KEY } from './paths.js';

/** Requests in flight at most (and keep-alive sockets per server), so none waits in the agent's queue with its timestamp running. */
export const MAX_IN_FLIGHT = 64;
const HTTP_TIMEOUT_MS = 5_000;

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

/** `POST` a JSON body; anything but 200 throws. */
export async function postJson(port: number, path: string, body: unknown): Promise<void> {
  const res = await http('POST', port, path, JSON.stringify(body));
  if (res.status !== 200) throw new Error(`POST :${port}${path} → ${res.status} ${res.text}`);
}
