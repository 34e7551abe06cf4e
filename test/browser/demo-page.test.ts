/**
 * The demo page in a real browser (Debian's chromium via playwright-core):
 * two people connect as alice and bob, and bob's log shows what alice sends
 * to him and publishes on a channel they share. Also proves the SDK bundle
 * runs in a browser with nothing from Node. Every field holds a real
 * default or a placeholder that is plainly a hint, and each failing action
 * shows its error right under the button that started it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newWatchedPage } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TIMEOUT = 30_000;

let node: SwitchboardNode | undefined;
let browser: Browser | undefined;

/** A new page with the demo, not connected; page errors and console errors go to `errors`. */
async function openPage(errors: string[]): Promise<Page> {
  if (!browser || !node) throw new Error('not set up');
  const page = await newWatchedPage(browser, TIMEOUT, errors);
  await page.goto(node.url('/'));
  return page;
}

async function openAs(user: string): Promise<{ page: Page; errors: string[] }> {
  const errors: string[] = [];
  const page = await openPage(errors);
  await page.getByTestId('user').fill(user);
  await page.getByTestId('connect').click();
  await expect.poll(() => page.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('connected');
  return { page, errors };
}

interface Outcome {
  text: string;
  error: boolean;
  /** Pixels from the bottom of the button to the top of its status line. */
  gap: number;
}

/** Click `button`, then wait for its section's status line to say `expected` and say where it is. */
async function outcomeOf(page: Page, button: string, expected: RegExp): Promise<Outcome> {
  await page.getByTestId(button).click();
  const status = page.getByTestId(`${button}-status`);
  await expect.poll(() => status.textContent(), { timeout: TIMEOUT }).toMatch(expected);
  const [b, s] = [await page.getByTestId(button).boundingBox(), await status.boundingBox()];
  if (!b || !s) throw new Error(`${button} or its status is not displayed`);
  return {
    text: (await status.textContent()) ?? '',
    error: (await status.getAttribute('class'))?.split(' ').includes('error') ?? false,
    gap: s.y - (b.y + b.height),
  };
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

  it(
    'every field holds a real default or a placeholder that is plainly a hint',
    async () => {
      const { page, errors } = await openAs('dora');
      const fields = await page.locator('input, textarea').evaluateAll((els) =>
        els.map((el) => {
          // An input or a textarea (the tests compile without the DOM library).
          const f = el as unknown as { id: string; value: string; placeholder: string };
          return { id: f.id, value: f.value, placeholder: f.placeholder };
        }),
      );
      expect(fields.length).toBeGreaterThanOrEqual(7);
      for (const f of fields) {
        // The user id holds what openAs typed.
        if (f.value === '' || f.id === 'user') expect(f.placeholder, f.id).toMatch(/^(e\.g\. |optional)/);
      }
      // The defaults work as they stand: subscribe and publish with nothing typed.
      await page.getByTestId('subscribe').click();
      const channel = await page.getByTestId('channel').inputValue();
      await page.locator(`[data-testid="subscriptions"] li[data-channel="${channel}"][data-state="subscribed"]`).waitFor();
      expect((await outcomeOf(page, 'publish', /offset/)).error).toBe(false);
      await page.getByTestId('log').locator(`tr.entry[data-channel="${channel}"]`).first().waitFor();
      expect(errors).toEqual([]);
    },
    TIMEOUT * 2,
  );

  it(
    'shows each error under the button that caused it, not only in the events panel',
    async () => {
      const errors: string[] = [];
      const page = await openPage(errors);
      // Connecting with no user id.
      await page.getByTestId('user').fill('');
      const noUser = await outcomeOf(page, 'connect', /user id/);
      expect(noUser.error).toBe(true);
      await page.getByTestId('user').fill('erin');
      expect((await outcomeOf(page, 'connect', /connected as erin/)).error).toBe(false);

      // Subscribing to an invalid name (refused by the SDK) and to another user's channel (refused by the node).
      await page.getByTestId('channel').fill('no spaces allowed');
      const invalid = await outcomeOf(page, 'subscribe', /invalid channel name/);
      await page.getByTestId('channel').fill('user:frank');
      const forbidden = await outcomeOf(page, 'subscribe', /forbidden/);
      // Publishing to an invalid channel, sending to an invalid user.
      await page.getByTestId('pub-channel').fill('no spaces allowed');
      const publish = await outcomeOf(page, 'publish', /could not publish/);
      await page.getByTestId('send-user').fill('no spaces allowed');
      const send = await outcomeOf(page, 'send', /could not send/);

      for (const outcome of [noUser, invalid, forbidden, publish, send]) {
        expect(outcome.error, outcome.text).toBe(true);
        // Right under the button: within a line or two.
        expect(outcome.gap, outcome.text).toBeGreaterThanOrEqual(0);
        expect(outcome.gap, outcome.text).toBeLessThan(40);
      }
      // The events panel keeps the history too.
      expect(await page.getByTestId('events').locator('li.error').count()).toBeGreaterThanOrEqual(5);
      expect(errors).toEqual([]);
    },
    TIMEOUT * 2,
  );
});
