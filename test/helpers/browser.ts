/**
 * Debian's chromium, headless, through playwright-core (which downloads no
 * browser), with the flags this machine's closed network needs: without
 * the background-networking ones chromium keeps dialling Google's hosts.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(timeoutMs: number): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: timeoutMs,
  });
}

/** A new page of `browser` whose waits time out after `timeoutMs`, and whose page errors and console errors go to `errors`. */
export async function newWatchedPage(browser: Browser, timeoutMs: number, errors: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeoutMs);
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  return page;
}

/** A node in this process and a chromium, started before the file's tests and closed after them. */
export function useNodeAndChromium(options: NodeOptionsInput, timeoutMs: number): { node: () => SwitchboardNode; browser: () => Browser } {
  let node: SwitchboardNode | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    node = await startNode(options);
    browser = await launchChromium(timeoutMs);
  }, 2 * timeoutMs);
  afterAll(async () => {
    await browser?.close();
    await node?.close();
  }, 2 * timeoutMs);
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('not set up');
    return value;
  };
  return { node: () => started(node), browser: () => started(browser) };
}
