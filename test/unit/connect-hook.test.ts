/**
 * The connect and refresh hooks without sockets: what a connect hook's
 * answer must be to name a user (anything else refuses, never accepts), the
 * request built from an upgrade, when a session is refreshed, and the
 * refresh hook driven by the heartbeat sweep (fake timers, a fake backend):
 * extended on 200, closed with 4105 on 403, retried until the expiry on a
 * failure, and bounded calls out. Also the server SDK's hook request parsers.
 */
import type { IncomingMessage } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode, SwitchboardError } from '../../src/protocol/index.js';
import { Heartbeat } from '../../src/server/core/heartbeat.js';
import { Session } from '../../src/server/core/session.js';
import type { HookClient } from '../../src/server/hooks/client.js';
import { checkExpireAt, connectIdentity, connectRequest, MAX_META_BYTES } from '../../src/server/hooks/connect.js';
import { RefreshHook, refreshTime } from '../../src/server/hooks/refresh.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';
import { parseConnectRequest, parseRefreshRequest, parseRpcRequest } from '../../src/server-sdk/hooks.js';
import { webhookSignature } from '../../src/server-sdk/webhook.js';
import { Recorder } from '../fuzz/core.js';

const NOW = Date.UTC(2026, 0, 1);
const NOW_S = NOW / 1000;

afterEach(() => {
  vi.useRealTimers();
});

/** The `unavailable` refusal `f` throws, or a failure of the test when it accepts. */
function refusal(f: () => unknown): SwitchboardError {
  try {
    f();
  } catch (err) {
    if (err instanceof SwitchboardError) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe("the connect hook's answer", () => {
  it('names the user, with channels, expiry and meta when given', () => {
    expect(connectIdentity({ user: 'alice' }, NOW)).toEqual({ user: 'alice', channels: [], meta: null });
    expect(connectIdentity({ user: 'bob', channels: ['team:*', 'room:1'], expireAt: NOW_S + 60.7, meta: { plan: 'pro' } }, NOW)).toEqual({
      user: 'bob',
      channels: ['team:*', 'room:1'],
      exp: NOW_S + 60,
      meta: { plan: 'pro' },
    });
  });

  it('refuses as unavailable every answer that does not make sense', () => {
    const answers: Record<string, unknown>[] = [
      {},
      { user: '' },
      { user: 'has space' },
      { user: 7 },
      { user: null },
      { user: 'a'.repeat(251) },
      { user: 'u', channels: 'room:1' },
      { user: 'u', channels: [1] },
      { user: 'u', channels: [''] },
      { user: 'u', channels: Array.from({ length: 1001 }, (_, i) => `c${i}`) },
      { user: 'u', expireAt: '1767225600' },
      { user: 'u', expireAt: NOW_S - 1 },
      { user: 'u', expireAt: NOW_S },
      { user: 'u', expireAt: NOW + 60_000 },
      { user: 'u', expireAt: null },
      { user: 'u', meta: { blob: 'x'.repeat(MAX_META_BYTES) } },
    ];
    for (const answer of answers) {
      const err = refusal(() => connectIdentity(answer, NOW));
      expect(err.code, JSON.stringify(answer).slice(0, 80)).toBe(ErrorCode.Unavailable);
      expect(err.message).toMatch(/^the connect hook answered nonsense: /);
    }
  });

  it('takes meta up to 4 KiB of JSON', () => {
    const meta = 'x'.repeat(MAX_META_BYTES - 2);
    expect(connectIdentity({ user: 'u', meta }, NOW).meta).toBe(meta);
  });

  it('expireAt: Unix seconds in the future, fractions cut', () => {
    expect(checkExpireAt('refresh', NOW_S + 1.9, NOW)).toBe(NOW_S + 1);
    expect(refusal(() => checkExpireAt('refresh', NOW_S + 0.5, NOW)).message).toMatch(/not in the future/);
    expect(refusal(() => checkExpireAt('refresh', Infinity, NOW)).message).toMatch(/must be a number/);
  });
});

describe("the connect hook's request", () => {
  it('passes on cookie, authorization, origin and user-agent when present, and the query', () => {
    const req = {
      headers: { cookie: 'sid=abc; theme=dark', origin: 'https://app.example', host: 'gw', 'x-secret': 'no', 'user-agent': 'UA/1' },
    } as unknown as IncomingMessage;
    const url = new URL('http://gw/ws?since=4&epoch=e&tag=a&tag=b');
    expect(connectRequest(req, url, '10.0.0.7')).toEqual({
      ip: '10.0.0.7',
      headers: { cookie: 'sid=abc; theme=dark', origin: 'https://app.example', 'user-agent': 'UA/1' },
      query: { since: '4', epoch: 'e', tag: 'a' },
    });
  });
});

describe('when a session is refreshed', () => {
  it('10 s before its end, or halfway through a life shorter than 20 s', () => {
    expect(refreshTime(NOW_S + 3600, NOW)).toBe(NOW + 3_590_000);
    expect(refreshTime(NOW_S + 20, NOW)).toBe(NOW + 10_000);
    expect(refreshTime(NOW_S + 4, NOW)).toBe(NOW + 2_000);
    expect(refreshTime(NOW_S - 1, NOW)).toBe(NOW - 1_000);
  });
});

describe('the refresh hook, driven by the heartbeat sweep', () => {
  type Answer = () => Promise<Record<string, unknown>>;
  /** A backend whose next answers are queued; its calls are recorded. */
  function backend(): { client: HookClient; calls: unknown[]; answers: Answer[] } {
    const calls: unknown[] = [];
    const answers: Answer[] = [];
    const client = {
      call: (hook: string, _url: string, payload: unknown) => {
        calls.push({ hook, ...(payload as object) });
        return (answers.shift() ?? (() => Promise.reject(new SwitchboardError(ErrorCode.Unavailable, 'down'))))();
      },
    } as unknown as HookClient;
    return { client, calls, answers };
  }

  function hookSession(id: string, expires: number): { s: Session; t: Recorder } {
    const t = new Recorder();
    const s = new Session({ id, user: `u-${id}`, grants: [], expires, meta: { id }, transport: t, limits: DEFAULT_LIMITS, now: Date.now(), onClosed: () => undefined });
    return { s, t };
  }

  function start(client: HookClient, sessions: Session[], maxInFlight = 256): { hook: RefreshHook; beat: Heartbeat } {
    const hook = new RefreshHook(client, 'http://backend/refresh', maxInFlight, pino({ level: 'silent' }));
    for (const s of sessions) hook.schedule(s, Date.now());
    const beat = new Heartbeat(sessions, 1000, 1000);
    beat.refresher = hook;
    beat.start();
    return { hook, beat };
  }

  it('asks before the expiry and extends the session by the answer, again and again', async () => {
    vi.useFakeTimers({ now: NOW });
    const { client, calls, answers } = backend();
    const a = hookSession('a', NOW_S + 30);
    answers.push(async () => ({ expireAt: NOW_S + 60 }), async () => ({ expireAt: NOW_S + 90 }));
    const { beat } = start(client, [a.s]);
    await vi.advanceTimersByTimeAsync(19_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toEqual([{ hook: 'refresh', user: 'u-a', session: 'a', meta: { id: 'a' } }]);
    expect(a.s.expires).toBe(NOW_S + 60);
    await vi.advanceTimersByTimeAsync(30_000); // 51 s in: the second refresh, due at 50 s
    expect(calls).toHaveLength(2);
    expect(a.s.expires).toBe(NOW_S + 90);
    await vi.advanceTimersByTimeAsync(38_000);
    expect(a.s.closed).toBe(false);
    beat.stop();
  });

  it('closes with 4105 at once when the backend answers 403', async () => {
    vi.useFakeTimers({ now: NOW });
    const { client, answers } = backend();
    const a = hookSession('a', NOW_S + 30);
    answers.push(() => Promise.reject(new SwitchboardError(ErrorCode.Forbidden, 'logged out')));
    const { beat } = start(client, [a.s]);
    await vi.advanceTimersByTimeAsync(21_000);
    expect(a.t.closedWith?.code).toBe(CloseCode.TokenExpired);
    expect(a.t.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4105, reconnect: true });
    beat.stop();
  });

  it('retries a failing backend until the expiry, then closes with 4105; never lets the session through', async () => {
    vi.useFakeTimers({ now: NOW });
    const { client, calls, answers } = backend();
    const a = hookSession('a', NOW_S + 30);
    answers.push(async () => ({ expireAt: 'soon' }));
    const { beat } = start(client, [a.s]);
    await vi.advanceTimersByTimeAsync(29_900);
    expect(a.s.closed).toBe(false);
    // Asked at 20 s, then about once a second (the answer that made no sense counts as a failure).
    expect(calls.length).toBeGreaterThanOrEqual(8);
    expect(calls.length).toBeLessThanOrEqual(11);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(a.t.closedWith?.code).toBe(CloseCode.TokenExpired);
    const asked = calls.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(asked);
    beat.stop();
  });

  it('has at most half of --hook-max-in-flight calls out; the others wait for a later sweep', async () => {
    vi.useFakeTimers({ now: NOW });
    const { client, calls, answers } = backend();
    const sessions = Array.from({ length: 6 }, (_, i) => hookSession(`s${i}`, NOW_S + 30));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    for (let i = 0; i < 6; i++) answers.push(() => gate.then(() => ({ expireAt: NOW_S + 120 })));
    const { beat } = start(client, sessions.map((x) => x.s), 4);
    await vi.advanceTimersByTimeAsync(22_000);
    expect(calls).toHaveLength(2);
    release();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toHaveLength(6);
    for (const { s } of sessions) expect(s.expires).toBe(NOW_S + 120);
    beat.stop();
  });
});

describe('the server SDK reads hook requests', () => {
  const secret = 'sdk-hook-secret';
  const signed = (body: unknown): [string, string] => {
    const text = JSON.stringify(body);
    return [text, webhookSignature(secret, text)];
  };

  it('into typed objects, after checking the signature', () => {
    const connect = { ip: '10.0.0.1', headers: { cookie: 'sid=1' }, query: {} };
    expect(parseConnectRequest(...signed(connect), secret)).toEqual(connect);
    const refresh = { user: 'u', session: 's', meta: null };
    expect(parseRefreshRequest(...signed(refresh), secret)).toEqual(refresh);
    const rpc = { user: 'u', session: 's', method: 'm', data: [1] };
    expect(parseRpcRequest(Buffer.from(signed(rpc)[0]), signed(rpc)[1], secret)).toEqual(rpc);
  });

  it('refusing a bad signature, and a body of another hook', () => {
    const [body] = signed({ user: 'u', session: 's', meta: null });
    expect(() => parseRefreshRequest(body, webhookSignature('other', body), secret)).toThrow(expect.objectContaining({ reason: 'signature' }));
    expect(() => parseRefreshRequest(body, undefined, secret)).toThrow(expect.objectContaining({ reason: 'signature' }));
    expect(() => parseConnectRequest(...signed({ user: 'u', session: 's', meta: null }), secret)).toThrow(expect.objectContaining({ reason: 'body' }));
    expect(() => parseConnectRequest(...signed({ ip: 'x', headers: { cookie: 1 }, query: {} }), secret)).toThrow(expect.objectContaining({ reason: 'body' }));
    expect(() => parseRpcRequest('not json', webhookSignature(secret, 'not json'), secret)).toThrow(expect.objectContaining({ reason: 'body' }));
  });
});
