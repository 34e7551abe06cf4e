/**
 * Token expiry and refresh in the core, without sockets: the node-wide sweep
 * closes a session at its `expires` with 4105 (fake timers), and the
 * `refresh` frame moves the expiry and the grants, or refuses and leaves the
 * session as it was.
 */
import { SignJWT, type JWTPayload } from 'jose';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory/memory-broker.js';
import { CloseCode, decodeClientFrame } from '../../src/protocol/index.js';
import { TokenVerifier } from '../../src/server/auth/token.js';
import { FrameHandler } from '../../src/server/core/frame-handler.js';
import { Gateway } from '../../src/server/core/gateway.js';
import { Heartbeat } from '../../src/server/core/heartbeat.js';
import { Session } from '../../src/server/core/session.js';
import { Metrics } from '../../src/server/metrics.js';
import { withDefaults } from '../../src/server/options.js';
import { InterestRouting } from '../../src/server/routing/strategies.js';
import { Recorder } from '../fuzz/core.js';

const SECRET = 'a-long-enough-test-secret-for-hs256!!';

function mint(payload: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

const nowS = (): number => Math.floor(Date.now() / 1000);

afterEach(() => {
  vi.useRealTimers();
});

describe('the expiry sweep', () => {
  const limits = withDefaults({ nodeId: 'n1' }).limits;
  function session(user: string, expires?: number): { s: Session; t: Recorder } {
    const t = new Recorder();
    const s = new Session({ id: user, user, grants: [], ...(expires !== undefined ? { expires } : {}), transport: t, limits, now: Date.now(), onClosed: () => undefined });
    return { s, t };
  }

  it('closes a session with 4105 once its expiry passes, not before, and leaves the others', () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
    const start = nowS();
    const soon = session('soon', start + 10);
    const later = session('later', start + 60);
    const never = session('never');
    // A long ping interval keeps the heartbeat's own closes (4103) out of the way; the sweep still runs every second.
    const beat = new Heartbeat([soon.s, later.s, never.s], 1000, 1000);
    beat.start();
    vi.advanceTimersByTime(9_900);
    expect(soon.s.closed).toBe(false);
    vi.advanceTimersByTime(1_100);
    expect(soon.t.closedWith?.code).toBe(CloseCode.TokenExpired);
    expect(soon.t.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4105, reconnect: true });
    expect(later.s.closed).toBe(false);
    expect(never.s.closed).toBe(false);
    vi.advanceTimersByTime(48_900); // 59.9 s in
    expect(later.s.closed).toBe(false);
    vi.advanceTimersByTime(1_100);
    expect(later.t.closedWith?.code).toBe(CloseCode.TokenExpired);
    vi.advanceTimersByTime(600_000);
    expect(never.s.closed).toBe(false);
    beat.stop();
  });

  it('follows an expiry moved later while the session is open', () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
    const start = nowS();
    const a = session('a', start + 5);
    const beat = new Heartbeat([a.s], 1000, 1000);
    beat.start();
    vi.advanceTimersByTime(3_000);
    a.s.expires = start + 20;
    vi.advanceTimersByTime(10_000);
    expect(a.s.closed).toBe(false);
    vi.advanceTimersByTime(8_000);
    expect(a.t.closedWith?.code).toBe(CloseCode.TokenExpired);
    beat.stop();
  });
});

describe('the refresh frame', () => {
  let gateway: Gateway;
  let handler: FrameHandler;

  async function setup(verifier?: TokenVerifier): Promise<void> {
    const options = withDefaults({ nodeId: 'n1', logLevel: 'silent', namespaces: { secret: { historySize: 0, historyTtl: 0, presence: false, publish: false, private: true } } });
    const metrics = new Metrics({ node: 'n1' });
    gateway = new Gateway('n1', options, new MemoryBroker(), new InterestRouting(), metrics, pino({ level: 'silent' }));
    await gateway.start();
    handler = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions, verifier);
  }
  afterEach(() => gateway.close());

  async function open(expires: number | undefined, grants: string[] = []): Promise<{ s: Session; t: Recorder }> {
    const t = new Recorder();
    const s = gateway.open({ user: 'alice', grants, ...(expires !== undefined ? { expires } : {}), transport: t });
    await vi.waitUntil(() => t.frames.length > 0, { timeout: 1000, interval: 5 });
    return { s, t };
  }

  async function send(s: Session, frame: unknown): Promise<void> {
    handler.receive(s, Buffer.from(JSON.stringify(frame)), false);
    await s.settled;
  }

  it('puts the expiry in welcome, and none for a session without one', async () => {
    await setup(new TokenVerifier({ secret: SECRET }));
    const exp = nowS() + 100;
    const { t } = await open(exp);
    expect(t.frames[0]).toMatchObject({ type: 'welcome', expires: exp });
    const other = await open(undefined);
    expect(other.t.frames[0]).not.toHaveProperty('expires');
  });

  it('a token for the same user moves the expiry and replaces the grants', async () => {
    await setup(new TokenVerifier({ secret: SECRET }));
    const { s, t } = await open(nowS() + 100);
    await send(s, { type: 'subscribe', id: 1, channel: 'secret:a' });
    expect(t.frames.at(-1)).toMatchObject({ id: 1, error: { code: 'forbidden' } });
    const exp = nowS() + 3600;
    await send(s, { type: 'refresh', id: 2, token: await mint({ sub: 'alice', exp, channels: ['secret:*'] }) });
    expect(t.frames.at(-1)).toEqual({ type: 'reply', id: 2, result: { expires: exp } });
    expect(s.expires).toBe(exp);
    await send(s, { type: 'subscribe', id: 3, channel: 'secret:a' });
    expect(t.frames.at(-1)).toMatchObject({ id: 3, result: { channel: 'secret:a' } });
  });

  it('a token without exp is unauthorized (SPEC: exp required) and changes nothing', async () => {
    await setup(new TokenVerifier({ secret: SECRET }));
    const exp = nowS() + 100;
    const { s, t } = await open(exp);
    await send(s, { type: 'refresh', id: 1, token: await mint({ sub: 'alice' }) });
    expect(t.frames.at(-1)).toMatchObject({ type: 'reply', id: 1, error: { code: 'unauthorized', message: expect.stringContaining('"exp"') } });
    expect(s.expires).toBe(exp);
  });

  it('a token for another user is forbidden and changes nothing', async () => {
    await setup(new TokenVerifier({ secret: SECRET }));
    const exp = nowS() + 100;
    const { s, t } = await open(exp, ['a:*']);
    await send(s, { type: 'refresh', id: 1, token: await mint({ sub: 'mallory', exp: exp + 1000, channels: ['secret:*'] }) });
    expect(t.frames.at(-1)).toMatchObject({ type: 'reply', id: 1, error: { code: 'forbidden' } });
    expect(s.expires).toBe(exp);
    expect(s.grants).toEqual(['a:*']);
    expect(s.closed).toBe(false);
  });

  it.each([
    // Past the 30 s of clock skew a verifier tolerates.
    ['expired', async () => mint({ sub: 'alice', exp: nowS() - 120 })],
    ['signed with another key', async () => mint({ sub: 'alice', exp: nowS() + 1000 }, 'another-secret-of-a-decent-length!!')],
    ['garbage', async () => 'not.a.jwt'],
  ])('a token %s is unauthorized and changes nothing', async (_what, token) => {
    await setup(new TokenVerifier({ secret: SECRET }));
    const exp = nowS() + 100;
    const { s, t } = await open(exp);
    await send(s, { type: 'refresh', id: 1, token: await token() });
    expect(t.frames.at(-1)).toMatchObject({ type: 'reply', id: 1, error: { code: 'unauthorized' } });
    expect(s.expires).toBe(exp);
    expect(s.closed).toBe(false);
  });

  it('a node without a verifier refuses every refresh as unauthorized', async () => {
    await setup();
    const { s, t } = await open(undefined);
    await send(s, { type: 'refresh', id: 1, token: await mint({ sub: 'alice' }) });
    expect(t.frames.at(-1)).toMatchObject({ type: 'reply', id: 1, error: { code: 'unauthorized' } });
  });

  it('decodes refresh and refuses one without a token string', () => {
    expect(decodeClientFrame('{"type":"refresh","id":4,"token":"x.y.z"}')).toEqual({ ok: true, frame: { type: 'refresh', id: 4, token: 'x.y.z' } });
    expect(decodeClientFrame('{"type":"refresh","id":4}')).toMatchObject({ ok: false, id: 4, error: { code: 'bad_request' } });
    expect(decodeClientFrame('{"type":"refresh","id":4,"token":""}')).toMatchObject({ ok: false, id: 4 });
    expect(decodeClientFrame('{"type":"refresh","token":"a"}')).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  });
});
