/**
 * Server-Sent Events in a real browser (Debian's chromium via
 * playwright-core) with WebSocket taken away, as on a network that blocks
 * it: a page of the node's origin opens `new EventSource('/sse?…')` and
 * receives messages; the server API then cuts the stream, messages are
 * published meanwhile, and the browser's own reconnection (which sends
 * `Last-Event-ID`) brings exactly those, in order, none twice. An
 * `EventSource` refused by a full node comes back by itself once there is
 * room, since the refusal reaches it as a stream that ends with `disconnect`.
 */
import { describe, expect, it } from 'vitest';
import { startNode } from '../../src/server/node.js';
import { api } from '../helpers/api.js';
import { newWatchedPage, useNodeAndChromium } from '../helpers/browser.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { SseClient } from '../helpers/sse-client.js';

const TIMEOUT = 30_000;

/** In the page: open the stream and record what it brings. */
const OPEN = `({ user, channel }) => {
  window.got = [];
  window.log = [];
  window.opens = 0;
  const es = new EventSource('/sse?user=' + user + '&channel=' + channel);
  es.onopen = () => window.opens++;
  es.onmessage = (e) => window.got.push(JSON.parse(e.data));
  for (const name of ['welcome', 'subscribed', 'disconnect']) es.addEventListener(name, (e) => window.log.push({ name, ...JSON.parse(e.data) }));
  window.es = es;
  return typeof WebSocket;
}`;

describe('Server-Sent Events in chromium without WebSocket', () => {
  const setup = useNodeAndChromium({ ...TEST_NODE }, TIMEOUT);

  it('an EventSource receives messages and, cut off, resumes with Last-Event-ID', { timeout: 60_000 }, async () => {
    const node = setup.node();
    const browser = setup.browser();
    const errors: string[] = [];
    const page = await newWatchedPage(browser, TIMEOUT, errors);
    // No WebSocket in this browser, as behind a proxy that refuses the upgrade.
    await page.addInitScript('delete window.WebSocket; window.WebSocket = undefined;');
    await page.route(node.url('/page'), (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>sse</title>' }));
    await page.goto(node.url('/page'));
    const channel = `news-${process.pid}`;
    expect(await page.evaluate(`(${OPEN})(${JSON.stringify({ user: 'pat', channel })})`)).toBe('undefined');
    await page.waitForFunction(() => (globalThis as unknown as { log: Array<{ name: string }> }).log.some((e) => e.name === 'subscribed'));

    for (const n of [1, 2]) await node.publish(channel, { n });
    await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 2);

    // The server cuts the stream; what is published before the browser comes back must not be lost.
    const cut = await api(node.url(), 'POST', '/api/disconnect', { user: 'pat', code: 4104, reason: 'cut for the test' });
    expect(cut.body).toMatchObject({ sessions: 1 });
    for (const n of [3, 4, 5]) await node.publish(channel, { n });
    await node.send('pat', { direct: true });

    await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 6, undefined, { timeout: 20_000 });
    type Got = { channel: string; data: { n?: number; direct?: boolean } };
    const state = (await page.evaluate('({ got: window.got, log: window.log, opens: window.opens, id: window.es.lastEventId })')) as {
      got: Got[];
      log: Array<{ name: string; recovered?: boolean; code?: number }>;
      opens: number;
      id: string;
    };
    expect(state.got.filter((m) => m.channel === channel).map((m) => m.data.n)).toEqual([1, 2, 3, 4, 5]);
    expect(state.got.filter((m) => m.channel === 'user:pat').map((m) => m.data)).toEqual([{ direct: true }]);
    expect(state.opens).toBe(2);
    expect(state.log.map((e) => e.name)).toEqual(['welcome', 'subscribed', 'disconnect', 'welcome', 'subscribed']);
    expect(state.log[2]).toMatchObject({ code: 4104, reconnect: true });
    expect(state.log.filter((e) => e.name === 'subscribed').every((e) => e.recovered === true)).toBe(true);
    expect(state.id).not.toBe('');
    // Nothing more comes (no repeat of a recovered message) while live delivery goes on.
    await node.publish(channel, { n: 6 });
    await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 7);
    expect(errors).toEqual([]);
    await page.evaluate('window.es.close()');
    await page.close();
  });

  it('an EventSource refused by a full node reconnects by itself once a place frees, and receives', { timeout: 60_000 }, async () => {
    const full = await startNode({ ...TEST_NODE, limits: { maxConnections: 1 } });
    const holder = await SseClient.open(full.url('/sse?user=holder'));
    try {
      await holder.count('welcome', 1);
      const errors: string[] = [];
      const page = await newWatchedPage(setup.browser(), TIMEOUT, errors);
      await page.route(full.url('/page'), (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>sse</title>' }));
      await page.goto(full.url('/page'));
      const channel = `full-${process.pid}`;
      await page.evaluate(`(${OPEN})(${JSON.stringify({ user: 'quinn', channel })})`);
      // Refused (the holder has the only place): a disconnect event, and the EventSource stays CONNECTING, not CLOSED.
      await page.waitForFunction(() => (globalThis as unknown as { log: Array<{ name: string }> }).log.some((e) => e.name === 'disconnect'));
      holder.close();
      // Its retry (5 s: the refusal's Retry-After) brings it back on its own.
      await page.waitForFunction(() => (globalThis as unknown as { log: Array<{ name: string }> }).log.some((e) => e.name === 'subscribed'), undefined, { timeout: 20_000 });
      await full.publish(channel, { after: 'the wait' });
      await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 1);
      const state = (await page.evaluate('({ got: window.got, log: window.log })')) as {
        got: Array<{ channel: string; data: unknown }>;
        log: Array<{ name: string; code?: number; reconnect?: boolean }>;
      };
      expect(state.got).toMatchObject([{ channel, data: { after: 'the wait' } }]);
      const refusals = state.log.filter((e) => e.name === 'disconnect');
      expect(refusals.length).toBeGreaterThanOrEqual(1);
      for (const r of refusals) expect(r).toMatchObject({ code: 4100, reconnect: true });
      expect(state.log.slice(-2).map((e) => e.name)).toEqual(['welcome', 'subscribed']);
      expect(errors).toEqual([]);
      await page.evaluate('window.es.close()');
      await page.close();
    } finally {
      holder.close();
      await full.close();
    }
  });
});
