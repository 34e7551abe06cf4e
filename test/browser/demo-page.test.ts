/**
 * The demo page in a real browser (Debian's chromium via playwright-core):
 * two people connect as alice and bob, and bob's log shows what alice sends
 * to him and publishes on a channel they share. Also proves the SDK bundle
 * runs in a browser with nothing from Node.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TIMEOUT = 30_000;

let node: SwitchboardNode | undefined;
let browser: Browser | undefined;

async function openAs(user: string): Promise<{ page: Page; errors: string[] }> {
  if (!browser || !node) throw new Error('not set up');
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  await page.goto(node.url('/'));
  await page.getByTestId('user').fill(user);
  await page.getByTestId('connect').click();
  await expect.poll(() => page.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('connected');
  return { page, errors };
}

async function subscribe(page: Page, channel: string): Promise<void> {
  await page.getByTestId('channel').fill(channel);
  await page.getByTestId('subscribe').click();
  await page.locator(`[data-testid="subscriptions"] li[data-channel="${channel}"][data-state="subscribed"]`).waitFor();
}

describe('demo page in chromium', () => {
  beforeAll(async () => {
    // Serve the bundle built from the current sources.
    execFileSync(process.execPath, ['scripts/build-browser.js'], { cwd: ROOT, stdio: 'pipe' });
    node = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent' });
    browser = await launchChromium(TIMEOUT);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.close();
  }, 60_000);

  it(
    'alice sends to bob and publishes on a shared channel; bob’s log shows both',
    async () => {
      const alice = await openAs('alice');
      const bob = await openAs('bob');
      expect(await bob.page.getByTestId('whoami').textContent()).toBe('bob');
      expect(await bob.page.getByTestId('node').textContent()).toBe(node?.id);

      await subscribe(alice.page, 'room.demo');
      await subscribe(bob.page, 'room.demo');

      await alice.page.getByTestId('send-user').fill('bob');
      await alice.page.getByTestId('send-data').fill('{"text":"hi bob"}');
      await alice.page.getByTestId('send').click();

      await alice.page.getByTestId('pub-channel').fill('room.demo');
      await alice.page.getByTestId('pub-data').fill('hello room');
      await alice.page.getByTestId('publish').click();

      const bobLog = bob.page.getByTestId('log');
      const personal = bobLog.locator('tr.entry[data-channel="user:bob"]');
      const room = bobLog.locator('tr.entry[data-channel="room.demo"]');
      await personal.first().waitFor();
      await room.first().waitFor();
      expect(await personal.count()).toBe(1);
      expect(await room.count()).toBe(1);
      expect(await personal.locator('td.data').textContent()).toBe('{"text":"hi bob"}');
      expect(await personal.locator('td.from').textContent()).toBe('alice');
      expect(await personal.getAttribute('data-offset')).toBe('1');
      expect(await room.locator('td.data').textContent()).toBe('"hello room"');
      expect(await room.locator('td.from').textContent()).toBe('alice');

      // Alice, subscribed too, sees her channel message but not bob's personal one.
      await alice.page.getByTestId('log').locator('tr.entry[data-channel="room.demo"]').first().waitFor();
      expect(await alice.page.getByTestId('log').locator('tr.entry[data-channel="user:bob"]').count()).toBe(0);

      // Disconnect works from the page.
      await bob.page.getByTestId('disconnect').click();
      await expect.poll(() => bob.page.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('disconnected');

      expect(alice.errors).toEqual([]);
      expect(bob.errors).toEqual([]);
    },
    TIMEOUT * 2,
  );
});
