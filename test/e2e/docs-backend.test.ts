/**
 * docs/backend.md's webhook receiver holds against the code: taken from
 * the Markdown, it type-checks under strict settings, runs as its own
 * process, and prints a user's online and offline sent by a real node; a
 * request with a bad signature is refused with 401. So do its rpc backend
 * and its complete backend (cookie sessions through the connect hook, an
 * rpc method, the webhook), against a node that takes no tokens at all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prepareExample } from '../helpers/doc-example.js';
import { cleanEnv } from '../helpers/doc-shell.js';
import { markedBlock, ROOT } from '../helpers/markdown.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'docs-backend-webhook-secret';
/** Inside the package, so that `switchboard/server-sdk` resolves to this repository's build (gitignored). */
const SCRATCH = join(ROOT, '.scratch');

let receiver: ChildProcess | undefined;
let node: NodeProcess | undefined;
let dir: string | undefined;

afterAll(async () => {
  receiver?.kill('SIGKILL');
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/backend.md: the webhook receiver', () => {
  it('type-checks, and prints the events a node sends it', async () => {
    mkdirSync(SCRATCH, { recursive: true });
    dir = mkdtempSync(join(SCRATCH, 'docs-backend-'));
    const { tsc, module } = await prepareExample(dir, 'receiver', markedBlock('docs/backend.md', 'webhook-receiver').text);
    expect(tsc).toBe('');
    const port = await freePort();
    let printed = '';
    receiver = spawn(process.execPath, [module], {
      cwd: ROOT,
      env: cleanEnv({ WEBHOOK_SECRET: SECRET, PORT: String(port) }),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    receiver.stdout!.setEncoding('utf8').on('data', (d: string) => (printed += d));
    const url = `http://127.0.0.1:${port}/events`;
    await vi.waitFor(async () => expect((await fetch(url, { method: 'POST', body: '{}' })).status).toBe(401), { timeout: 10_000, interval: 100 });

    node = await startNodeProcess('docs-backend', ['--insecure', '--webhook', url, '--webhook-secret', SECRET]);
    const client = await RawClient.connect(node.ws('user=docs-reader'));
    await vi.waitFor(() => expect(printed).toBe('online docs-reader\n'), { timeout: 5000, interval: 25 });
    await client.close();
    await vi.waitFor(() => expect(printed).toBe('online docs-reader\noffline docs-reader\n'), { timeout: 5000, interval: 25 });
  }, 60_000);
});

describe('docs/backend.md: the rpc backend', () => {
  let backend: ChildProcess | undefined;
  let rpcNode: NodeProcess | undefined;
  afterAll(async () => {
    backend?.kill('SIGKILL');
    await rpcNode?.stop();
  });

  it('type-checks, and answers rpc calls a real node passes on, refusing unknown methods', async () => {
    mkdirSync(SCRATCH, { recursive: true });
    const scratch = mkdtempSync(join(SCRATCH, 'docs-rpc-'));
    try {
      const { tsc, module } = await prepareExample(scratch, 'rpc', markedBlock('docs/backend.md', 'rpc-backend').text);
      expect(tsc).toBe('');
      const port = await freePort();
      backend = spawn(process.execPath, [module], { cwd: ROOT, env: cleanEnv({ HOOK_SECRET: SECRET, PORT: String(port) }), stdio: 'ignore' });
      const url = `http://127.0.0.1:${port}/rpc`;
      await vi.waitFor(async () => expect((await fetch(url, { method: 'POST', body: '{}' })).status).toBe(401), { timeout: 10_000, interval: 100 });

      rpcNode = await startNodeProcess('docs-rpc', ['--insecure', '--rpc-hook', url, '--hook-secret', SECRET]);
      const client = await RawClient.connect(rpcNode.ws('user=docs-caller'));
      expect(await client.request({ type: 'rpc', method: 'whoami', data: null })).toMatchObject({ result: { data: { user: 'docs-caller' } } });
      expect(await client.request({ type: 'rpc', method: 'add', data: { a: 2, b: 3 } })).toMatchObject({ result: { data: 5 } });
      expect(await client.request({ type: 'rpc', method: 'nope', data: {} })).toMatchObject({ error: { code: 'not_found', message: 'no method nope' } });
      await client.close();
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('docs/backend.md: the complete backend', () => {
  let app: ChildProcess | undefined;
  let appNode: NodeProcess | undefined;
  afterAll(async () => {
    app?.kill('SIGKILL');
    await appNode?.stop();
  });

  it('type-checks; a client logged in with its cookie connects through the connect hook, calls the rpc, and the webhook sees it online', async () => {
    mkdirSync(SCRATCH, { recursive: true });
    const scratch = mkdtempSync(join(SCRATCH, 'docs-complete-'));
    try {
      const { tsc, module } = await prepareExample(scratch, 'backend', markedBlock('docs/backend.md', 'complete-backend').text);
      expect(tsc).toBe('');
      const port = await freePort();
      let printed = '';
      app = spawn(process.execPath, [module], {
        cwd: ROOT,
        env: cleanEnv({ HOOK_SECRET: 'docs-hook-secret', WEBHOOK_SECRET: SECRET, PORT: String(port) }),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      app.stdout!.setEncoding('utf8').on('data', (d: string) => (printed += d));
      const base = `http://127.0.0.1:${port}`;
      await vi.waitFor(async () => expect((await fetch(`${base}/switchboard/rpc`, { method: 'POST', body: '{}' })).status).toBe(401), {
        timeout: 10_000,
        interval: 100,
      });

      // No --secret, --public-key or --insecure: the connect hook names every client.
      appNode = await startNodeProcess('docs-complete', [
        ...['--connect-hook', `${base}/switchboard/connect`, '--refresh-hook', `${base}/switchboard/refresh`],
        ...['--rpc-hook', `${base}/switchboard/rpc`, '--webhook', `${base}/switchboard/events`],
        ...['--hook-secret', 'docs-hook-secret', '--webhook-secret', SECRET],
      ]);
      const login = await fetch(`${base}/login?user=carol`, { method: 'POST' });
      expect(login.status).toBe(200);
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      expect(cookie).toMatch(/^sid=[0-9a-f-]{36}$/);

      const client = await RawClient.connect(appNode.ws(), { headers: { cookie } });
      expect(client.welcome.user).toBe('carol');
      expect(client.welcome.expires! - Date.now() / 1000).toBeGreaterThan(3500);
      expect(await client.request({ type: 'rpc', method: 'greet', data: null })).toMatchObject({ result: { data: 'hello, carol' } });
      expect(await client.request({ type: 'rpc', method: 'nope', data: null })).toMatchObject({ error: { code: 'not_found', message: 'no method nope' } });
      await vi.waitFor(() => expect(printed).toBe('online carol\n'), { timeout: 5000, interval: 25 });

      // Without the cookie, or once logged out, the backend refuses the upgrade with its 401.
      await expect(RawClient.open(appNode.ws())).rejects.toMatchObject({ status: 401 });
      expect((await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } })).status).toBe(204);
      await expect(RawClient.open(appNode.ws(), { headers: { cookie } })).rejects.toMatchObject({ status: 401 });
      await client.close();
      await vi.waitFor(() => expect(printed).toBe('online carol\noffline carol\n'), { timeout: 5000, interval: 25 });
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 60_000);
});
