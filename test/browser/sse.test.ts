/**
 * Server-Sent Events in a real browser (Debian's chromium via
 * playwright-core) with WebSocket taken away, as on a network that blocks
 * it: a page of the node's origin opens `new EventSource('/sse?…')` and
 * receives messages; the server API then cuts the stream, messages are
 * published meanwhile, and the browser's own reconnection (which sends
 * `Last-Event-ID`) brings exactly those, in order, none twice.
 */
import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { newWatchedPage, useNodeAndChromium } from '../helpers/browser.js';
import { TEST_NODE } from '../helpers/fixture.js';

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
});
