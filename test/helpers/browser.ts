/**
 * Debian's chromium, headless, through playwright-core (which downloads no
 * browser), with the flags this machine's closed network needs: without
 * the background-networking ones chromium keeps dialling Google's hosts.
 */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(timeoutMs: number): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: timeoutMs,
  });
}
