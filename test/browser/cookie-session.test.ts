/**
 * A cookie session in a real browser (Debian's chromium via playwright-core):
 * a backend started here logs the page in with a `sid` cookie (HttpOnly: the
 * page's script cannot even read it), serves a page with no token anywhere,
 * and answers a node's connect and rpc hooks. The page connects to the node
 * — another port of the same host, so the browser sends the cookie with the
 * upgrade — and its `client.rpc` comes back with the user the backend gave
 * the cookie. A session the hook gave a short `expireAt` is closed with
 * 4105 and the client reconnects through the hook with its cookie; a
 * browser without the cookie is refused by the connect hook.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectRequest, parseRpcRequest, type ConnectHookRequest } from '../../src/server-sdk/index.js';
import { launchChromium, newWatchedPage } from '../helpers/browser.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TIMEOUT = 30_000;
const HOOK_SECRET = 'browser-cookie-hook-secret';
const SID = 'c0ffee-1234';
/** A session the connect hook gives 2 s: the node (no refresh hook) closes it with 4105, and the client comes back with its cookie. */
const SHORT_SID = 'short-5678';

let backend: http.Server | undefined;
let base = '';
let node: NodeProcess | undefined;
let browser: Browser | undefined;
const connects: ConnectHookRequest[] = [];
/** Upgrade URLs the pages opened. */
const sockets: string[] = [];

/** The page: the client SDK, no token, connects to the node and shows the rpc's answer. */
function page(wsUrl: string): string {
  return `<!doctype html><meta charset="utf-8"><title>cookie session</title>
<p>state: <span data-testid="state">new</span></p>
<p>answer: <span data-testid="answer"></span></p>
<p>closes: <span data-testid="closes"></span></p>
<script type="module">
  import { SwitchboardClient } from '/switchboard.js';
  const client = new SwitchboardClient({ url: ${JSON.stringify(wsUrl)} });
  client.on('state', ({ state }) => (document.querySelector('[data-testid=state]').textContent = state));
  client.on('error', () => undefined);
  client.on('disconnected', ({ code, reconnect }) => (document.querySelector('[data-testid=closes]').textContent += code + (reconnect ? '+' : '-') + ' '));
  client.connect();
  const answer = await client.rpc('whoami', { asked: 'from the page' });
  document.querySelector('[data-testid=answer]').textContent = JSON.stringify(answer);
</script>`;
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const signature = req.headers['x-switchboard-signature'];
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    switch (req.url) {
      case '/login':
      case '/login-short':
        // A real login checks a password; the cookie is HttpOnly, so no script on the page can read it.
        res.writeHead(302, { location: '/app', 'set-cookie': `sid=${req.url === '/login' ? SID : SHORT_SID}; HttpOnly; SameSite=Lax; Path=/` }).end();
        return;
      case '/app':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(node?.ws() ?? ''));
        return;
      case '/switchboard.js':
      case '/switchboard.js.map':
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(readFileSync(`${ROOT}dist/web${req.url}`));
        return;
      case '/favicon.ico':
        res.writeHead(204).end();
        return;
      case '/hooks/connect': {
        const hello = parseConnectRequest(raw, signature, HOOK_SECRET);
        connects.push(hello);
        const sid = /(?:^|;\s*)sid=([^;]+)/.exec(hello.headers.cookie ?? '')?.[1];
        if (sid === SHORT_SID) return json(200, { user: 'frank', expireAt: Math.floor(Date.now() / 1000) + 2 });
        return sid === SID ? json(200, { user: 'erin', meta: { sid } }) : json(401, { error: { message: 'not logged in' } });
      }
      case '/hooks/rpc': {
        const call = parseRpcRequest(raw, signature, HOOK_SECRET);
        return json(200, { data: { user: call.user, method: call.method, data: call.data } });
      }
      default:
        json(404, {});
    }
  });
}

describe('a cookie session in chromium', () => {
  beforeAll(async () => {
    // The page loads the client SDK bundle built from the current sources.
    execFileSync(process.execPath, ['scripts/build-browser.js'], { cwd: ROOT, stdio: 'pipe' });
    backend = http.createServer(handle);
    await new Promise<void>((r) => backend!.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    // No --secret and no --insecure: the connect hook names every client.
    node = await startNodeProcess('cookie-node', ['--connect-hook', `${base}/hooks/connect`, '--rpc-hook', `${base}/hooks/rpc`, '--allowed-origins', base], {
      SWITCHBOARD_HOOK_SECRET: HOOK_SECRET,
    });
    browser = await launchChromium(TIMEOUT);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.stop();
    backend?.closeAllConnections();
    await new Promise((r) => (backend ? backend.close(r) : r(undefined)));
  }, 60_000);

  it(
    'a page logged in with a cookie connects through the connect hook and calls an rpc as its user',
    async () => {
      const errors: string[] = [];
      const tab = await newWatchedPage(browser!, TIMEOUT, errors);
      tab.on('websocket', (ws) => sockets.push(ws.url()));
      await tab.goto(`${base}/login`);
      expect(new URL(tab.url()).pathname).toBe('/app');
      await expect.poll(() => tab.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('connected');
      await expect.poll(() => tab.getByTestId('answer').textContent(), { timeout: TIMEOUT }).not.toBe('');
      expect(JSON.parse((await tab.getByTestId('answer').textContent()) ?? '')).toEqual({
        user: 'erin',
        method: 'whoami',
        data: { asked: 'from the page' },
      });
      // The browser sent the cookie with the upgrade; nothing on the page or in its URL is a token.
      expect(connects.at(-1)?.headers.cookie).toBe(`sid=${SID}`);
      expect(connects.at(-1)?.headers.origin).toBe(base);
      expect(sockets).toHaveLength(1);
      expect(sockets[0]).not.toMatch(/token/);
      expect(await tab.content()).not.toMatch(/token|c0ffee/i);
      expect(await tab.evaluate('document.cookie')).toBe('');
      expect(errors).toEqual([]);
      await tab.close();
    },
    TIMEOUT * 2,
  );

  it(
    'a cookie session that ends at its expireAt (4105) comes back through the connect hook with the cookie',
    async () => {
      const context = await browser!.newContext();
      try {
        const tab = await context.newPage();
        await tab.goto(`${base}/login-short`);
        await expect.poll(() => tab.getByTestId('answer').textContent(), { timeout: TIMEOUT }).toContain('"user":"frank"');
        await expect.poll(() => tab.getByTestId('closes').textContent(), { timeout: TIMEOUT }).toContain('4105+');
        const asked = (): number => connects.filter((c) => c.headers.cookie === `sid=${SHORT_SID}`).length;
        await expect.poll(asked, { timeout: TIMEOUT }).toBeGreaterThanOrEqual(2);
        await expect.poll(() => tab.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('connected');
      } finally {
        await context.close();
      }
    },
    TIMEOUT * 2,
  );

  it(
    'a browser without the cookie is refused by the connect hook and never connects',
    async () => {
      const context = await browser!.newContext();
      try {
        const tab = await context.newPage();
        const before = connects.length;
        await tab.goto(`${base}/app`);
        // The client tries again with backoff; every attempt comes without a cookie and is refused.
        await expect.poll(() => connects.length, { timeout: TIMEOUT }).toBeGreaterThan(before + 1);
        expect(connects.slice(before).map((c) => c.headers.cookie)).toEqual(connects.slice(before).map(() => undefined));
        expect(await tab.getByTestId('state').textContent()).not.toBe('connected');
        expect(await tab.getByTestId('answer').textContent()).toBe('');
      } finally {
        await context.close();
      }
    },
    TIMEOUT * 2,
  );
});
