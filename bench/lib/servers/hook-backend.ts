// The business backend of the hook benchmark (bench/hooks.ts), plain
// `node:http` as a small real backend would be: `POST /connect` maps the
// session cookie `sid=<user>` in the forwarded headers to that user (401
// without one), `POST /publish` allows the publication as it is. The same
// backend answers Switchboard's hooks and the Socket.IO server's middleware
// and event handler, which post the same bodies. A signed request (from
// Switchboard) is checked as a real backend would, with the server SDK; a
// bad signature is refused with 401. `GET /readyz` says 200.
//   node --expose-gc --import probe.mjs hook-backend.mjs <port> <secret>
import { createServer } from 'node:http';
import { verifyWebhook } from '../../../src/server-sdk/index.js';
import { readBody } from './http-api.js';

const port = Number(process.argv[2]);
const secret = process.argv[3] ?? '';

interface HookBody {
  headers?: { cookie?: string };
}

/** The user of a `sid=<user>` cookie, if the cookie header has one. */
const userOfCookie = (cookie: string | undefined): string | undefined => /(?:^|;\s*)sid=([^;]+)/.exec(cookie ?? '')?.[1];

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/readyz') return void res.end();
  if (req.method !== 'POST' || (req.url !== '/connect' && req.url !== '/publish')) {
    res.statusCode = 404;
    return void res.end();
  }
  readBody(req).then(
    (text) => {
      res.setHeader('content-type', 'application/json');
      const signature = req.headers['x-switchboard-signature'];
      if (signature !== undefined && !verifyWebhook(text, signature, secret)) {
        res.statusCode = 401;
        return void res.end('{"error":{"message":"bad signature"}}');
      }
      if (req.url === '/publish') return void res.end('{}');
      const user = userOfCookie((JSON.parse(text) as HookBody).headers?.cookie);
      if (user === undefined) {
        res.statusCode = 401;
        return void res.end('{"error":{"message":"no session"}}');
      }
      res.end(JSON.stringify({ user }));
    },
    () => {
      res.statusCode = 400;
      res.end();
    },
  );
});
// Keep-alive longer than the callers' idle sockets live, so that the backend never closes one under a request.
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
