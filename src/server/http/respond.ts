/** Small helpers for JSON over node:http: answers, errors, and bounded bodies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { depthExceeds, ErrorCode, httpStatusOf, MAX_JSON_DEPTH, SwitchboardError, type ErrorAnswer, type ErrorBody } from '../../protocol/index.js';

/**
 * Refuses malformed UTF-8 instead of replacing it with U+FFFD: a body that
 * is not what its sender meant is refused, like a WebSocket text frame is.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, error: ErrorBody, status = httpStatusOf[error.code]): void {
  sendJson(res, status, { error } satisfies ErrorAnswer);
}

/**
 * Read a JSON object body of at most `maxBytes`; throws `too_large` /
 * `bad_request` (not UTF-8, not JSON, not an object, nested deeper than
 * `MAX_JSON_DEPTH` levels like a client frame).
 */
export async function readJsonObject(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new SwitchboardError(ErrorCode.TooLarge, `request body over ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new SwitchboardError(ErrorCode.TooLarge, `request body over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  let text: string;
  try {
    text = UTF8.decode(Buffer.concat(chunks));
  } catch {
    throw new SwitchboardError(ErrorCode.BadRequest, 'request body is not valid UTF-8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new SwitchboardError(ErrorCode.BadRequest, 'request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SwitchboardError(ErrorCode.BadRequest, 'request body must be a JSON object');
  }
  // Deeper data would be stored, then fail `JSON.stringify` on every delivery and history read.
  if (depthExceeds(body, MAX_JSON_DEPTH)) {
    throw new SwitchboardError(ErrorCode.BadRequest, `request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  return body as Record<string, unknown>;
}

/** A raw HTTP response on a socket that asked for an upgrade and is refused; `headers` are added as given (e.g. `Retry-After`). */
export function refuseUpgrade(
  socket: NodeJS.WritableStream & { destroy(): void },
  status: number,
  error: ErrorBody,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify({ error } satisfies ErrorAnswer);
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' }[status] ?? 'Error';
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Connection: close\r\n\r\n${text}`,
  );
}
