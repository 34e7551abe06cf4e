/**
 * The report-progress app: a tiny HTTP server that serves the page, the
 * client SDK bundle and the page's settings, and starts a job on
 * `POST /jobs {user}`. The job (worker.ts) reports progress with the server
 * SDK; the page, connected to a Switchboard node, shows it.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SwitchboardApi } from '../../src/server-sdk/index.js'; // in your app: 'switchboard/server-sdk'
import { runJob } from './worker.js';

export interface ReportProgressOptions {
  /** The app's port. Default 3000; 0 picks a free one. */
  port?: number;
  host?: string;
  /** Server API base URL(s) the worker publishes through. */
  apiUrls: string[];
  apiKey?: string;
  /** The WebSocket URL the page connects to, e.g. `ws://localhost:8080/ws`. */
  wsUrl: string;
  /** The repository root (holds examples/ and dist/web/). Default: the working directory. */
  root?: string;
  /** Steps per job and milliseconds per step. Default 10 and 300. */
  steps?: number;
  stepMs?: number;
}

export interface ReportProgressApp {
  url: string;
  server: Server;
  /** Jobs still running (a test waits for them; errors are logged, not thrown). */
  running: Set<Promise<void>>;
  close(): Promise<void>;
}

const USER = /^[A-Za-z0-9_\-.:@=,]{1,250}$/;
/** Request bodies are tiny: `{"user": "..."}`. */
const MAX_BODY = 4096;

async function readBody(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > MAX_BODY) throw new Error('body too large');
  }
  return JSON.parse(text) as unknown;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startReportProgress(options: ReportProgressOptions): Promise<ReportProgressApp> {
  const root = options.root ?? process.cwd();
  const api = new SwitchboardApi({ baseUrl: options.apiUrls, apiKey: options.apiKey });
  const running = new Set<Promise<void>>();
  const files: Record<string, { path: string; type: string }> = {
    '/': { path: join(root, 'examples/report-progress/index.html'), type: 'text/html; charset=utf-8' },
    '/switchboard.js': { path: join(root, 'dist/web/switchboard.js'), type: 'text/javascript; charset=utf-8' },
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const file = files[url.pathname];
    if (req.method === 'GET' && file) {
      readFile(file.path).then(
        (body) => {
          res.writeHead(200, { 'content-type': file.type });
          res.end(body);
        },
        () => json(res, 500, { error: `missing ${file.path}: run npm run build` }),
      );
      return;
    }
    if (req.method === 'GET' && url.pathname === '/config') return json(res, 200, { wsUrl: options.wsUrl });
    if (req.method === 'POST' && url.pathname === '/jobs') {
      readBody(req).then(
        (body) => {
          const user = typeof body === 'object' && body !== null && 'user' in body ? body.user : undefined;
          if (typeof user !== 'string' || !USER.test(user)) return json(res, 400, { error: '"user" must be a user id' });
          // A real app would take the user from its session, not from the body.
          const job = { id: randomUUID(), user, steps: options.steps ?? 10, stepMs: options.stepMs ?? 300 };
          const run = runJob(api, job).catch((err: unknown) => console.error(`job ${job.id} failed:`, err));
          running.add(run);
          void run.finally(() => running.delete(run));
          json(res, 202, { job: job.id });
        },
        () => json(res, 400, { error: 'body must be JSON {"user": "..."}' }),
      );
      return;
    }
    json(res, 404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 3000, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    server,
    running,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await Promise.allSettled([...running]);
    },
  };
}
