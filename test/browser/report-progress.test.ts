/**
 * The report-progress example in a real browser (Debian's chromium via
 * playwright-core) over a real cluster: two node processes share a private
 * redis-server; the page connects to node A, the app's worker reports
 * progress through node B's server API, and the bar reaches 100 % with every
 * step shown once, in order. A second tab of the same user shows the job
 * the first tab started, up to 100 %, as the example's README says.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newWatchedPage } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReportProgress, type ReportProgressApp } from '../../examples/report-progress/server.js';
import { SwitchboardApi } from '../../src/server-sdk/index.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startRedis, type RedisProcess } from '../helpers/redis-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TIMEOUT = 30_000;
const STEPS = 10;

let redis: RedisProcess | undefined;
const nodes: NodeProcess[] = [];
let app: ReportProgressApp | undefined;
let browser: Browser | undefined;

describe('report-progress example in chromium', () => {
  beforeAll(async () => {
    // The page loads the client SDK bundle built from the current sources.
    execFileSync(process.execPath, ['scripts/build-browser.js'], { cwd: ROOT, stdio: 'pipe' });
    redis = await startRedis();
    // The app (its port not known yet) serves the page from another origin than the nodes'.
    const args = ['--broker', redis.url, '--insecure', '--api-key', 'test-key', '--allowed-origins', 'http://127.0.0.1:*'];
    nodes.push(await startNodeProcess('progress-a', args));
    nodes.push(await startNodeProcess('progress-b', args));
    const [a, b] = nodes;
    if (!a || !b) throw new Error('nodes did not start');
    app = await startReportProgress({
      port: 0,
      apiUrls: [b.url()],
      apiKey: 'test-key',
      wsUrl: a.ws(),
      root: ROOT,
      steps: STEPS,
      stepMs: 60,
    });
    browser = await launchChromium(TIMEOUT);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await redis?.kill();
  }, 60_000);

  /** A new tab of `user`, connected; page errors and console errors go to `errors`. */
  async function openTab(user: string, errors: string[]): Promise<Page> {
    if (!browser || !app) throw new Error('not set up');
    const page = await newWatchedPage(browser, TIMEOUT, errors);
    await page.goto(`${app.url}/?user=${user}`);
    await expect.poll(() => page.getByTestId('state').textContent(), { timeout: TIMEOUT }).toBe('connected');
    return page;
  }

  /** The steps a tab lists for the job in its bar, as [step, percent]. */
  async function shownSteps(page: Page): Promise<number[][]> {
    const steps: number[][] = [];
    for (const li of await page.locator('[data-testid="steps"] li').all()) {
      steps.push([Number(await li.getAttribute('data-step')), Number(await li.getAttribute('data-percent'))]);
    }
    return steps;
  }

  const allSteps = Array.from({ length: STEPS + 1 }, (_, i) => [i, Math.round((i * 100) / STEPS)]);

  it(
    'shows every step of a job, in order, up to 100 %',
    async () => {
      const errors: string[] = [];
      const page = await openTab('carol', errors);
      expect(await page.getByTestId('node').textContent()).toBe('progress-a');

      await page.getByTestId('start').click();
      await expect.poll(() => page.getByTestId('percent').textContent(), { timeout: TIMEOUT }).toBe('100');
      // `progress.value` reflects into the attribute.
      expect(await page.getByTestId('bar').getAttribute('value')).toBe('100');

      const steps = await shownSteps(page);
      expect(steps).toEqual(allSteps);

      // Stored once each, through node B, on carol's personal channel.
      const history = await new SwitchboardApi({ baseUrl: nodes[1]?.url() ?? '', apiKey: 'test-key' }).history('user:carol', { since: 0 });
      expect(history.messages.map((m) => (m.data as { step: number }).step)).toEqual(steps.map(([s]) => s));
      expect(errors).toEqual([]);
    },
    TIMEOUT * 2,
  );

  it(
    'a second tab of the same user shows the job the first tab started, up to 100 %',
    async () => {
      const errors: string[] = [];
      const first = await openTab('dave', errors);
      const second = await openTab('dave', errors);
      await first.getByTestId('start').click();
      await expect.poll(() => first.getByTestId('percent').textContent(), { timeout: TIMEOUT }).toBe('100');
      const job = await first.locator('[data-testid="jobs"] li').first().getAttribute('data-job');
      expect(job).toMatch(/^[0-9a-f-]{36}$/);

      // The second tab started nothing: it draws the job from the messages on dave's channel.
      await expect.poll(() => second.getByTestId('percent').textContent(), { timeout: TIMEOUT }).toBe('100');
      expect(await second.getByTestId('bar').getAttribute('value')).toBe('100');
      expect(await second.getByTestId('job').textContent()).toContain(job ?? 'no job');
      const rows = second.locator('[data-testid="jobs"] li');
      expect(await rows.count()).toBe(1);
      expect(await rows.first().getAttribute('data-job')).toBe(job);
      expect(await rows.first().getAttribute('data-percent')).toBe('100');
      // Both tabs were connected before the start: each shows every step once, in order.
      expect(await shownSteps(second)).toEqual(allSteps);
      expect(await shownSteps(first)).toEqual(allSteps);
      expect(errors).toEqual([]);
    },
    TIMEOUT * 2,
  );
});
