/** Small helpers for JSON over node:http: answers, errors, and bounded bodies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, httpStatusOf, SwitchboardError, type ErrorBody } from '../../protocol/index.js';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, error: ErrorBody, status = httpStatusOf[error.code]): void {
  sendJson(res, status, { error });
}

/** Read a JSON object body of at most `maxBytes`; throws `too_large` / `bad_request`. */
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
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new SwitchboardError(ErrorCode.BadRequest, 'request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SwitchboardError(ErrorCode.BadRequest, 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** A raw HTTP response on a socket that asked for an upgrade and is refused. */
export function refuseUpgrade(socket: NodeJS.WritableStream & { destroy(): void }, status: number, error: ErrorBody): void {
  const text = JSON.stringify({ error });
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' }[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
