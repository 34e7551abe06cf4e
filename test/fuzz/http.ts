/**
 * Raw HTTP requests for the API fuzz: exact bytes, exact headers, a body
 * sent with Content-Length or chunked, and a deadline, so that a hang is a
 * failure rather than a stuck test.
 */
import { request } from 'node:http';

export interface RawRequest {
  method: string;
  /** Sent as is: may hold malformed percent-encoding. */
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Send the body chunked (no Content-Length), in pieces of this many bytes. */
  chunked?: number;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body, when it is JSON. */
  json: unknown;
}

export function send(port: number, req: RawRequest, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(req.headers ?? {}) };
    if (req.body && !req.chunked) headers['content-length'] = req.body.length;
    const r = request({ host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    const timer = setTimeout(() => {
      r.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${req.method} ${req.path.slice(0, 80)}`));
    }, timeoutMs);
    // The server may answer (413) and stop reading before the body is sent: that is its right.
    r.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (req.body && req.chunked) {
      for (let i = 0; i < req.body.length; i += req.chunked) r.write(req.body.subarray(i, i + req.chunked));
      r.end();
    } else {
      r.end(req.body);
    }
  });
}
