/**
 * The files a node serves to browsers: the demo page, the admin dashboard
 * and the SDK bundle, each with headers that keep another site from
 * framing them or running code in them (docs/security.md).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../../protocol/index.js';
import { sendError } from './respond.js';

/** Files of the pages, relative to the package root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HTML = 'text/html; charset=utf-8';

const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'web/index.html', type: HTML },
  '/switchboard.js': { file: 'dist/web/switchboard.js', type: 'text/javascript; charset=utf-8' },
  '/admin': { file: 'web/admin/index.html', type: HTML },
  '/admin/admin.js': { file: 'web/admin/admin.js', type: 'text/javascript; charset=utf-8' },
  '/admin/admin.css': { file: 'web/admin/admin.css', type: 'text/css; charset=utf-8' },
};
/** Only with `--serve-sourcemaps`: it hands out the SDK's sources. */
const SOURCEMAP = { '/switchboard.js.map': { file: 'dist/web/switchboard.js.map', type: 'application/json' } } as const;

/** On every file: no MIME sniffing, no framing by other sites, no full URL (with its `?user=`) in Referer headers to other origins. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'strict-origin-when-cross-origin',
};

/**
 * The Content-Security-Policy of a page: its scripts only from this node
 * (and its own inline scripts, by hash), nothing embedded from elsewhere,
 * no framing. WebSockets may go to any host: a client follows redirects
 * and `/api/route` to the other nodes of the cluster.
 */
export function contentSecurityPolicy(html: string): string {
  const hashes = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/gi)]
    .map((m) => m[1] ?? '')
    .filter((body) => body.trim() !== '')
    .map((body) => `'sha256-${createHash('sha256').update(body).digest('base64')}'`);
  return [
    "default-src 'none'",
    `script-src 'self'${hashes.map((h) => ` ${h}`).join('')}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self' ws: wss:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Answers GET/HEAD of the page files; false when `path` is none of them (the caller answers 404). */
export async function servePage(req: IncomingMessage, res: ServerResponse, path: string, sourcemaps: boolean): Promise<boolean> {
  const file = FILES[path] ?? (sourcemaps && path in SOURCEMAP ? SOURCEMAP[path as keyof typeof SOURCEMAP] : undefined);
  if (!file) return false;
  let body: Buffer;
  try {
    body = await readFile(ROOT + file.file);
  } catch {
    sendError(res, { code: ErrorCode.NotFound, message: `${file.file} is missing: run npm run build` });
    return true;
  }
  const csp = file.type === HTML ? { 'content-security-policy': contentSecurityPolicy(body.toString('utf8')) } : {};
  res.writeHead(200, { 'content-type': file.type, 'content-length': body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS, ...csp });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
