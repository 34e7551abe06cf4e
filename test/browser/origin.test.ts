/**
 * Cross-site WebSocket hijacking, tried in Chromium (issue 19, finding 3): a
 * page served from another origin (another port of 127.0.0.1 is one) opens
 * a WebSocket to a node and is refused with 403 (counted as
 * `reason="origin"`), while the node's own demo page connects, and so does
 * the other page once `--allowed-origins` names it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { launchChromium, newWatchedPage } from '../helpers/browser.js';
import { metric } from '../helpers/metrics.js';

const TIMEOUT = 30_000;

let browser: Browser | undefined;
let site: http.Server | undefined;
/** The other origin: a page of its own, nothing else. */
let siteUrl = '';
const nodes: SwitchboardNode[] = [];

/** In `page`, opens a WebSocket to `url` and says whether it opened or was refused. */
function tryWebSocket(page: Page, url: string): Promise<string> {
  return page.evaluate(
    (target) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(target);
        ws.onopen = () => {
          ws.close();
          resolve('open');
        };
        ws.onclose = () => resolve('refused');
      }),
    url,
  );
}

beforeAll(async () => {
  site = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>elsewhere</title><p>another site</p>'));
  await new Promise<void>((r) => site!.listen(0, '127.0.0.1', r));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  nodes.push(await startNode({ ...TEST_NODE }));
  nodes.push(await startNode({ ...TEST_NODE, allowedOrigins: [siteUrl] }));
  browser = await launchChromium(TIMEOUT);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.close()));
  site?.closeAllConnections();
  await new Promise((r) => (site ? site.close(r) : r(undefined)));
}, 60_000);

describe('the Origin of a browser WebSocket', () => {
  it('refuses a page of another origin with 403, and lets the node’s own page connect', async () => {
    const [node] = nodes;
    if (!browser || !node) throw new Error('not set up');
    const ws = `ws://127.0.0.1:${node.port}/ws?user=victim`;
    const errors: string[] = [];
    const hostile = await newWatchedPage(browser, TIMEOUT, errors);
    const statuses: number[] = [];
    hostile.on('console', (msg) => {
      const m = /Unexpected response code: (\d+)/.exec(msg.text());
      if (m) statuses.push(Number(m[1]));
    });
    await hostile.goto(siteUrl);
    expect(await tryWebSocket(hostile, ws)).toBe('refused');
    expect(statuses).toEqual([403]);
    expect(await metric(node.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'origin' })).toBe(1);

    const own = await newWatchedPage(browser, TIMEOUT, []);
    await own.goto(node.url('/'));
    expect(await tryWebSocket(own, ws)).toBe('open');
    expect(await metric(node.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'origin' })).toBe(1);
    await Promise.all([hostile.close(), own.close()]);
  });

  it('lets the other origin in once --allowed-origins names it', async () => {
    const allowing = nodes[1];
    if (!browser || !allowing) throw new Error('not set up');
    const page = await newWatchedPage(browser, TIMEOUT, []);
    await page.goto(siteUrl);
    expect(await tryWebSocket(page, `ws://127.0.0.1:${allowing.port}/ws?user=friend`)).toBe('open');
    await page.close();
  });
});
