/**
 * The steps of one connection attempt that need no client state: finding
 * the URL to connect to, choosing the subprotocols to offer, and opening
 * the socket.
 */
import type { ConnectFrame } from '../protocol/index.js';
import { codecOfSubprotocol, encodeClientFrameBinary, MSGPACK_SUBPROTOCOL } from '../protocol/msgpack.js';
import { ClientError, LocalErrorCode } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { buildConnectUrl, type WebSocketLike } from './transport.js';

/** The base URL of an attempt, and the error to report when `resolveUrl` failed. */
export interface ResolvedBase {
  url: string;
  error?: ClientError;
}

/**
 * `resolveUrl`'s answer, or `url` when there is no resolver or it fails
 * (with the error to report, unless the attempt was abandoned meanwhile).
 * Never rejects.
 */
export async function resolveBase(opts: Pick<ResolvedOptions, 'resolveUrl' | 'url' | 'connectTimeout'>): Promise<ResolvedBase> {
  const { resolveUrl, url, connectTimeout } = opts;
  if (!resolveUrl) return { url };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let problem: unknown;
  try {
    const answer = await Promise.race([
      resolveUrl(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeout} ms`)), connectTimeout);
      }),
    ]);
    if (typeof answer !== 'string') throw new TypeError(`resolveUrl gave ${typeof answer}, not a string`);
    buildConnectUrl(answer, {}); // throws for anything but a (ws|http)(s) URL
    return { url: answer };
  } catch (err) {
    problem = err;
  } finally {
    clearTimeout(timer);
  }
  return { url, error: new ClientError(LocalErrorCode.ResolveUrl, `resolveUrl failed; connecting to ${url}`, problem) };
}

/**
 * The subprotocols to offer, in the order of preference: the MessagePack
 * one first when asked for, then `subprotocol` so that a server without
 * MessagePack still agrees on JSON.
 */
export function offeredProtocols(opts: Pick<ResolvedOptions, 'codec' | 'subprotocol'>): string[] {
  const { codec, subprotocol } = opts;
  const offered = codec === 'msgpack' ? [MSGPACK_SUBPROTOCOL] : [];
  if (subprotocol !== null && !offered.includes(subprotocol)) offered.push(subprotocol);
  return offered;
}

/**
 * A new socket to `url` offering the configured subprotocols; with
 * `tokenIn: 'frame'`, it sends `token` as its first frame once open (in the
 * codec the server selected). Throws what the WebSocket constructor throws.
 */
export function openSocket(opts: Pick<ResolvedOptions, 'WebSocket' | 'codec' | 'subprotocol' | 'tokenIn'>, url: string, token?: string): WebSocketLike {
  const Ctor = opts.WebSocket;
  const protocols = offeredProtocols(opts);
  const ws = protocols.length === 0 ? new Ctor(url) : new Ctor(url, protocols);
  // Binary frames must arrive as something decodable at once (a browser's default is a Blob).
  if (opts.codec === 'msgpack') ws.binaryType = 'arraybuffer';
  if (token !== undefined && opts.tokenIn === 'frame') ws.onopen = () => sendConnect(ws, token);
  return ws;
}

/** The connect frame; a socket already failing is left to its close event. */
function sendConnect(ws: WebSocketLike, token: string): void {
  const frame: ConnectFrame = { type: 'connect', token };
  try {
    ws.send(codecOfSubprotocol(ws.protocol) === 'msgpack' ? encodeClientFrameBinary(frame) : JSON.stringify(frame));
  } catch {
    // Closing already: the client reconnects on the close event.
  }
}
