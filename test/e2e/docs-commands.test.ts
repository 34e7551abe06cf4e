/**
 * The docs' commands run as written: the README's quick start (its `start`
 * part, against this repository's build instead of the registry) and the
 * cluster-behind-nginx commands of docs/cluster.md, taken from the Markdown
 * itself, run with bash as an ordinary user. Only what the docs read from
 * the environment is set: the node's port (`SWITCHBOARD_PORT`), and the
 * scratch folder, ports and Redis URL that docs/cluster.md takes from
 * `SB_DIR`, `SB_PORT`, `SB_NGINX_PORT` and `SB_REDIS`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { SwitchboardClient } from '../../src/client/index.js';
import type { UserAnswer } from '../../src/protocol/api.js';
import type { Publication } from '../../src/protocol/index.js';
import { killShells, runShell, startShell, userDir } from '../helpers/doc-shell.js';
import { codeBlocks, markedBlock, readDoc } from '../helpers/markdown.js';
import { waitReady } from '../helpers/node-process.js';
import { freePort, freePortRun, isPortFree } from '../helpers/ports.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';
import { nextEvent } from '../helpers/wait.js';

const clients: SwitchboardClient[] = [];
let redis: RedisProcess | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  killShells();
  await redis?.stop();
}, 30_000);

/** A client of `url` (`ws://…/ws`) as `user`, subscribed to `channel`, with the messages it gets. */
async function subscribedClient(url: string, user: string, channel: string): Promise<{ client: SwitchboardClient; next: () => Promise<Publication> }> {
  const client = new SwitchboardClient({ url, params: { user }, WebSocket: WebSocket as never });
  clients.push(client);
  const sub = client.subscribe(channel);
  client.connect();
  await sub.ready(15_000);
  return { client, next: () => nextEvent<Publication>((l) => client.once('message', l), 10_000, `a message on ${channel}`) };
}

async function publish(base: string, channel: string, data: unknown): Promise<number> {
  const res = await fetch(`${base}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  return res.status;
}

/** Resolves once nothing accepts connections on any of `ports` (at most 20 s). */
async function waitClosed(ports: number[]): Promise<void> {
  await vi.waitUntil(async () => (await Promise.all(ports.map(isPortFree))).every(Boolean), { timeout: 20_000, interval: 200 });
}

describe("the README's quick start", () => {
  it('starts a node with the memory broker that serves the demo page and delivers a message; SIGTERM drains it', async () => {
    const block = codeBlocks(readDoc('README.md')).find((b) => b.lang === 'bash' && /switchboard start/.test(b.text));
    const line = block?.text.split('\n').find((l) => /switchboard start/.test(l) && !l.trim().startsWith('#'));
    expect(line, 'a bash block of README.md runs switchboard start').toBeDefined();
    // The install is the registry's business; the start part runs this repository's build.
    const start = (line ?? '')
      .split('&&')
      .map((s) => s.trim())
      .filter((s) => !/^npm (install|i|ci)\b/.test(s))
      .join(' && ');
    expect(start).toMatch(/^npx switchboard start\b/);

    const port = await freePort();
    const shell = startShell(start, { SWITCHBOARD_PORT: String(port) });
    try {
      await waitReady(port, shell.child, 20_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${shell.output().stderr}`);
      });
      const page = await fetch(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);

      const alice = await subscribedClient(`ws://127.0.0.1:${port}/ws`, 'alice', 'chat.lobby');
      const got = alice.next();
      expect(await publish(`http://127.0.0.1:${port}`, 'chat.lobby', { text: 'hello from the quick start' })).toBe(200);
      expect((await got).data).toEqual({ text: 'hello from the quick start' });
      alice.client.disconnect();

      shell.signalGroup('SIGTERM');
      const run = await shell.done;
      expect(run.code, run.stderr).toBe(0);
    } finally {
      shell.signalGroup('SIGKILL');
    }
  }, 60_000);
});

describe('docs/cluster.md: three nodes over Redis behind nginx', () => {
  it('runs as written, routes a client through nginx, and a message published on one node reaches it on another', async () => {
    redis = await startRedis();
    const env = {
      SB_DIR: userDir('sb-doc-cluster-'),
      SB_PORT: String(await freePortRun(3)),
      SB_NGINX_PORT: String(await freePort()),
      SB_REDIS: redis.url,
    };
    const nodePorts = [0, 1, 2].map((i) => Number(env.SB_PORT) + i);
    const nginx = `http://127.0.0.1:${env.SB_NGINX_PORT}`;
    try {
      const up = await runShell(markedBlock('docs/cluster.md', 'cluster-nginx').text, env, 90_000);
      expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
      // What the doc prints at the end: the demo page's address, and /api/nodes through nginx.
      expect(up.stdout).toContain(`${nginx}/`);
      expect(up.stdout).toContain('"nodes"');
      // The upstream block the doc cut out of the cluster's output is plain nginx syntax.
      expect(readFileSync(join(env.SB_DIR, 'nginx.conf'), 'utf8')).toContain(
        ['upstream switchboard {', ...nodePorts.map((p) => `    server 127.0.0.1:${p};`), '}'].join('\n'),
      );

      await vi.waitUntil(
        async () => ((await (await fetch(`${nginx}/api/nodes`)).json()) as { nodes: unknown[] }).nodes.length === 3,
        { timeout: 20_000, interval: 200 },
      );
      const alice = await subscribedClient(`ws://127.0.0.1:${env.SB_NGINX_PORT}/ws`, 'alice', 'room.docs');
      const user = (await (await fetch(`${nginx}/api/users/alice`)).json()) as UserAnswer;
      const home = user.sessions[0]?.node ?? '';
      expect(home).toMatch(/^node-[123]$/);
      // Publish through a node that does not hold alice's connection.
      const other = nodePorts[Number(home.slice('node-'.length)) % 3] as number;
      const got = alice.next();
      expect(await publish(`http://127.0.0.1:${other}`, 'room.docs', { text: 'across the cluster' })).toBe(200);
      const message = await got;
      expect(message.data).toEqual({ text: 'across the cluster' });
      alice.client.disconnect();

      const down = await runShell(markedBlock('docs/cluster.md', 'cluster-nginx-stop').text, env, 30_000);
      expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0);
      await waitClosed([...nodePorts, Number(env.SB_NGINX_PORT)]);
    } finally {
      // Whatever the doc's stop block did not stop: the nodes are in the start block's process
      // group (killShells), nginx runs on its own and left its pid.
      const pidFile = join(env.SB_DIR, 'nginx.pid');
      if (existsSync(pidFile)) {
        try {
          process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      killShells();
    }
  }, 150_000);
});
