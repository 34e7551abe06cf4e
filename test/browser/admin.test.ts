/**
 * The cluster dashboard at `/admin` in a real browser (Debian's chromium via
 * playwright-core), against two node processes over a private redis-server:
 * nothing is shown without the API key; with it, both nodes appear with live
 * connection counts; the page's client simulator spreads its SDK clients
 * over both nodes and they show up in the counts; a node killed with SIGKILL
 * disappears from the page and its clients move to the survivor.
 *
 * With `ADMIN_SCREENSHOTS=1` the test also writes docs/img/admin-*.png.
 */
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const DOCS_IMG = fileURLToPath(new URL('../../docs/img/', import.meta.url));
const SCREENSHOTS = process.env.ADMIN_SCREENSHOTS === '1';
const TIMEOUT = 30_000;
const KEY = 'k';
/** Simulated clients: enough to see a spread, few enough for a 2-core machine. */
const SIM_CLIENTS = 40;

let redis: RedisProcess | undefined;
const nodes: NodeProcess[] = [];
let browser: Browser | undefined;
let page: Page | undefined;
let raw: RawClient | undefined;
const errors: string[] = [];

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} not set up`);
  return v;
}

/** The number shown in a node's row, column `col` (undefined while the row is absent). */
async function cell(p: Page, node: string, col: string): Promise<string | null> {
  const loc = p.locator(`[data-testid="nodes"] tr[data-node="${node}"] td[data-col="${col}"]`);
  return (await loc.count()) === 0 ? null : loc.textContent();
}

/** A figure as the page shows it (`1,234.5` with the browser's grouping) as a number. */
async function figure(p: Page, testId: string): Promise<number> {
  return Number((await p.getByTestId(testId).textContent())?.replace(/[^\d.]/g, '') || NaN);
}

async function shot(p: Page, name: string): Promise<void> {
  if (SCREENSHOTS) await p.screenshot({ path: `${DOCS_IMG}admin-${name}.png`, fullPage: true });
}

describe('cluster dashboard in chromium', () => {
  beforeAll(async () => {
    redis = await startRedis();
    const args = [
      '--broker', redis.url, '--insecure', '--api-key', KEY, '--routing', 'hashring',
      '--heartbeat', '1', '--dead-after-beats', '2',
      // Every simulated client comes from 127.0.0.1.
      '--max-connections-per-ip-per-second', '0', '--max-handshakes-per-second', '0', '--max-handshakes-in-flight', '0',
    ];
    nodes.push(...(await Promise.all(['dash-a', 'dash-b'].map((id) => startNodeProcess(id, args)))));
    browser = await launchChromium(TIMEOUT);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (err) => errors.push(err.message));
  }, 60_000);

  afterAll(async () => {
    await raw?.close().catch(() => undefined);
    await browser?.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await redis?.kill();
  }, 60_000);

  it('shows nothing without the key, then both nodes with live connection counts', async () => {
    const p = need(page, 'page');
    const [a] = nodes;
    await p.goto(need(a, 'node a').url('/admin'));
    await expect.poll(() => p.getByTestId('status').getAttribute('data-state'), { timeout: TIMEOUT }).toBe('unauthorized');
    expect(await p.getByTestId('data').isHidden()).toBe(true);
    expect(await p.locator('[data-testid="nodes"] tr').count()).toBe(0);
    await shot(p, 'locked');

    await p.getByTestId('key').fill('wrong');
    await p.getByTestId('save-key').click();
    await expect.poll(() => p.getByTestId('notice').textContent(), { timeout: TIMEOUT }).toContain('refused');
    expect(await p.getByTestId('data').isHidden()).toBe(true);

    await p.getByTestId('key').fill(KEY);
    await p.getByTestId('save-key').click();
    await expect.poll(() => p.getByTestId('status').getAttribute('data-state'), { timeout: TIMEOUT }).toBe('live');
    await expect.poll(() => cell(p, 'dash-a', 'connections'), { timeout: TIMEOUT }).toBe('0');
    await expect.poll(() => cell(p, 'dash-b', 'connections'), { timeout: TIMEOUT }).toBe('0');
    expect(await cell(p, 'dash-b', 'broker')).toBe('redis');

    // A client of node B, which the page (served by A) learns of through B's heartbeat.
    raw = await RawClient.connect(need(nodes[1], 'node b').ws('user=watcher'));
    await expect.poll(() => cell(p, 'dash-b', 'connections'), { timeout: TIMEOUT }).toBe('1');
    await expect.poll(() => p.getByTestId('total-connections').textContent(), { timeout: TIMEOUT }).toBe('1');
    expect(await p.locator('#ring-bars .bar').count()).toBe(2);
    await shot(p, 'overview');
  }, 60_000);

  it('spreads the simulator’s clients over both nodes and counts what they receive', async () => {
    const p = need(page, 'page');
    await p.getByTestId('sim-count').fill(String(SIM_CLIENTS));
    await p.getByTestId('sim-open').click();
    await expect.poll(() => p.getByTestId('sim-connected').textContent(), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS));
    // Round robin over two nodes: half each, plus the raw client on B.
    await expect.poll(() => cell(p, 'dash-a', 'connections'), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS / 2));
    await expect.poll(() => cell(p, 'dash-b', 'connections'), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS / 2 + 1));
    await expect.poll(() => p.getByTestId('total-connections').textContent(), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS + 1));

    await p.getByTestId('traffic-rate').fill('10');
    await p.getByTestId('traffic-start').click();
    await expect.poll(() => figure(p, 'traffic-sent'), { timeout: TIMEOUT }).toBeGreaterThanOrEqual(10);
    // Every published message reaches all simulated clients.
    await expect.poll(() => figure(p, 'sim-received'), { timeout: TIMEOUT })
      .toBeGreaterThanOrEqual(10 * SIM_CLIENTS);
    await expect.poll(() => figure(p, 'total-out'), { timeout: TIMEOUT }).toBeGreaterThan(0);
    await shot(p, 'simulator');
    await p.getByTestId('traffic-stop').click();
    expect(await p.getByTestId('traffic-failed').textContent()).toBe('0');
  }, 60_000);

  it('drops a node killed with SIGKILL, and its clients move to the survivor', async () => {
    const p = need(page, 'page');
    await need(nodes[1], 'node b').kill();
    await expect.poll(() => p.locator('[data-testid="nodes"] tr[data-node="dash-b"]').count(), { timeout: TIMEOUT }).toBe(0);
    expect(await p.getByTestId('total-nodes').textContent()).toBe('1 / 1');
    await expect.poll(() => p.getByTestId('sim-connected').textContent(), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS));
    await expect.poll(() => cell(p, 'dash-a', 'connections'), { timeout: TIMEOUT }).toBe(String(SIM_CLIENTS));
    await shot(p, 'node-killed');
    expect(errors).toEqual([]);
  }, 60_000);
});
