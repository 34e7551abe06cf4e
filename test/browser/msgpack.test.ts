/**
 * The SDK bundle's MessagePack codec in a real browser (Debian's chromium
 * via playwright-core) against a node with `msgpack: true`: the browser
 * delivers binary messages as Blobs unless told otherwise, so this proves
 * the SDK sets `binaryType` and decodes what the browser hands it. A second
 * page on JSON shares the channel.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { launchChromium } from '../helpers/browser.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TIMEOUT = 30_000;

let node: SwitchboardNode | undefined;
let browser: Browser | undefined;

/** In a page of the node's origin: connect as `user` with `codec` and subscribe to `channel`; resolves with the codec in use. */
const CONNECT = `async ({ user, codec, channel }) => {
  const { SwitchboardClient } = await import('/switchboard.js');
  const client = new SwitchboardClient({ url: '/ws', params: { user }, codec, device: null });
  window.got = [];
  client.on('message', (m) => { if (m.channel === channel) window.got.push(m.data); });
  const connected = new Promise((resolve) => client.once('connected', resolve));
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error('no welcome within 10 s')), 10000));
  client.connect();
  const info = await Promise.race([connected, late]);
  await client.subscribe(channel).ready();
  window.client = client;
  return info.codec;
}`;

/** Publish `count` messages on `channel`, one after another. */
const PUBLISH = `async ({ user, channel, count }) => {
  for (let i = 0; i < count; i++) await window.client.publish(channel, { from: user, i, text: 'é ✓' });
}`;

/** Resolve with what arrived once there are `expected` messages, or after 10 s. */
const COLLECT = `async ({ expected }) => {
  const deadline = Date.now() + 10000;
  while (window.got.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  window.client.disconnect();
  return window.got;
}`;

describe('MessagePack codec in chromium', () => {
  beforeAll(async () => {
    execFileSync(process.execPath, ['scripts/build-browser.js'], { cwd: ROOT, stdio: 'pipe' });
    node = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', msgpack: true });
    browser = await launchChromium(TIMEOUT);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.close();
  }, 60_000);

  it(
    'a MessagePack page and a JSON page exchange messages on one channel',
    async () => {
      if (!browser || !node) throw new Error('not set up');
      const context = await browser.newContext();
      const [mpPage, jsonPage] = [await context.newPage(), await context.newPage()];
      const errors: string[] = [];
      for (const page of [mpPage, jsonPage]) {
        page.setDefaultTimeout(TIMEOUT);
        page.on('pageerror', (err) => errors.push(err.message));
        await page.goto(node.url('/'));
      }
      const channel = `chat:browser-${process.pid}`;
      const run = (page: typeof mpPage, script: string, arg: unknown) => page.evaluate(`(${script})(${JSON.stringify(arg)})`);
      const mpCodec = await run(mpPage, CONNECT, { user: 'mp', codec: 'msgpack', channel });
      const jsCodec = await run(jsonPage, CONNECT, { user: 'js', codec: 'json', channel });
      await Promise.all([run(mpPage, PUBLISH, { user: 'mp', channel, count: 5 }), run(jsonPage, PUBLISH, { user: 'js', channel, count: 5 })]);
      type Data = { from: string; i: number; text: string };
      const [mp, js] = (await Promise.all([run(mpPage, COLLECT, { expected: 10 }), run(jsonPage, COLLECT, { expected: 10 })])) as Data[][];
      expect(errors).toEqual([]);
      expect(mpCodec).toBe('msgpack');
      expect(jsCodec).toBe('json');
      // Both pages got all ten, each sender's in order, and the same sequence (one channel, one order).
      for (const got of [mp, js]) {
        for (const from of ['mp', 'js']) expect(got?.filter((d) => d.from === from).map((d) => d.i)).toEqual([0, 1, 2, 3, 4]);
        expect(got?.every((d) => d.text === 'é ✓')).toBe(true);
      }
      expect(mp).toEqual(js);
    },
    TIMEOUT * 2,
  );
});
