/**
 * docs/backend.md's subscribe and publish hook backend holds against the
 * code: taken from the Markdown, it type-checks under strict settings, runs
 * as its own process behind a real node started with the page's namespace
 * options, lets members in and keeps others out, and rewrites and refuses
 * messages as the page says.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prepareExample } from '../helpers/doc-example.js';
import { cleanEnv } from '../helpers/doc-shell.js';
import { markedBlock, ROOT } from '../helpers/markdown.js';
import { startNodeProcess, writeConfig, type NodeProcess } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'docs-channel-hooks-secret';
/** Inside the package, so that `switchboard/server-sdk` resolves to this repository's build (gitignored). */
const SCRATCH = join(ROOT, '.scratch');

let backend: ChildProcess | undefined;
let node: NodeProcess | undefined;
const clients: RawClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  backend?.kill('SIGKILL');
  await node?.stop();
});

describe('docs/backend.md: the subscribe and publish hook backend', () => {
  it('type-checks, admits members, and trims, stamps or refuses their messages', async () => {
    mkdirSync(SCRATCH, { recursive: true });
    const scratch = mkdtempSync(join(SCRATCH, 'docs-channel-hooks-'));
    try {
      const { tsc, module } = await prepareExample(scratch, 'hooks', markedBlock('docs/backend.md', 'channel-hooks-backend').text);
      expect(tsc).toBe('');
      const port = await freePort();
      backend = spawn(process.execPath, [module], { cwd: ROOT, env: cleanEnv({ HOOK_SECRET: SECRET, PORT: String(port) }), stdio: 'ignore' });
      const base = `http://127.0.0.1:${port}`;
      await vi.waitFor(async () => expect((await fetch(`${base}/subscribe`, { method: 'POST', body: '{}' })).status).toBe(401), {
        timeout: 10_000,
        interval: 100,
      });
      const config = writeConfig({
        subscribeHook: `${base}/subscribe`,
        publishHook: `${base}/publish`,
        namespaces: { room: { subscribeHook: true, publishHook: true }, news: { publish: false } },
      });
      node = await startNodeProcess('docs-channel-hooks', ['--insecure', '--config', config], { SWITCHBOARD_HOOK_SECRET: SECRET });
      const connect = async (user: string) => {
        const c = await RawClient.connect(node!.ws(`user=${user}`));
        clients.push(c);
        return c;
      };
      const [alice, bob, eve] = [await connect('alice'), await connect('bob'), await connect('eve')];
      expect(await alice.request({ type: 'subscribe', channel: 'room:lobby' })).toMatchObject({ result: { channel: 'room:lobby' } });
      expect(await eve.request({ type: 'subscribe', channel: 'room:lobby' })).toMatchObject({ error: { code: 'forbidden', message: 'members only' } });
      expect(await bob.request({ type: 'publish', channel: 'room:lobby', data: { text: '   ' } })).toMatchObject({ error: { code: 'forbidden', message: 'empty message' } });
      expect(await eve.request({ type: 'publish', channel: 'room:lobby', data: { text: 'hi' } })).toMatchObject({ error: { code: 'forbidden' } });
      expect(await bob.request({ type: 'publish', channel: 'room:lobby', data: { text: '  hello  ', author: 'mallory' } })).toMatchObject({ result: {} });
      expect(await alice.next((f) => f.type === 'message' && f.channel === 'room:lobby')).toMatchObject({ data: { text: 'hello', author: 'bob' } });
      expect(alice.messages('room:lobby')).toHaveLength(1);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 60_000);
});
