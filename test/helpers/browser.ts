/**
 * Debian's chromium, headless, through playwright-core (which downloads no
 * browser), with the flags this machine's closed network needs: without
 * the background-networking ones chromium keeps dialling Google's hosts.
 */
import { chromium, type Browser, type Page } from 'playwright-core';

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
