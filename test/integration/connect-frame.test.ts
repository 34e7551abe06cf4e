/**
 * The token in the first frame (SPEC "Client connection"): an upgrade with
 * no token is accepted, and its first frame must be `{"type": "connect",
 * "token"}`; a refused token, another frame first, or silence closes the
 * connection with 4001 before any session exists. A bad token in the URL or
 * the header is still refused with 401 before the upgrade. The wait for the
 * connect frame is `--first-frame-timeout` (5 s by default).
 */
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { encodeClientFrameBinary, MSGPACK_SUBPROTOCOL, parseMsgpack } from '../../src/protocol/msgpack.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { withDefaults } from '../../src/server/options.js';
import { metric } from '../helpers/metrics.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'a-test-secret-of-decent-length-for-frames';
const DEFAULT_FIRST_FRAME_TIMEOUT_MS = withDefaults().firstFrameTimeout;
const nodes: SwitchboardNode[] = [];
const processes: NodeProcess[] = [];
const clients: RawClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.close()));
  await Promise.all(processes.map((p) => p.stop()));
});

async function node(): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', secret: SECRET, msgpack: true });
  nodes.push(n);
  return n;
}

function token(sub: string, exp: string | number = '10m'): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));
}

async function open(n: SwitchboardNode, query = ''): Promise<RawClient> {
  const c = await RawClient.open(`ws://127.0.0.1:${n.port}/ws${query}`);
  clients.push(c);
  return c;
}

describe('the token in the first frame', () => {
  it('a good token gets welcome; frames sent right after connect are answered after it', async () => {
    const n = await node();
    const c = await open(n);
    c.send({ type: 'connect', token: await token('nia') });
    c.send({ type: 'ping', id: 7 });
    c.send({ type: 'subscribe', id: 8, channel: 'room:1' });
    const welcome = await c.next((f) => f.type === 'welcome');
    expect(welcome).toMatchObject({ user: 'nia', channel: 'user:nia', expires: expect.any(Number) });
    expect(await c.next((f) => f.type === 'pong')).toEqual({ type: 'pong', id: 7 });
    expect(await c.next((f) => f.type === 'reply' && f.id === 8)).toHaveProperty('result');
    expect(c.frames.findIndex((f) => f.type === 'welcome')).toBe(0);
  });

  it('a bad token closes with 4001 and the verifier’s reason, with no welcome', async () => {
    const n = await node();
    const cases: Record<string, [string, RegExp]> = {
      expired: [await token('oli', Math.floor(Date.now() / 1000) - 120), /expired/],
      'wrong key': [await new SignJWT({ sub: 'oli' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('another-secret-of-some-length')), /signature/],
      garbage: ['not.a.jwt', /malformed/],
    };
    for (const [name, [bad, reason]] of Object.entries(cases)) {
      const c = await open(n);
      c.send({ type: 'connect', token: bad });
      const closed = await c.closed;
      expect(closed.code, name).toBe(4001);
      expect(closed.reason, name).toMatch(reason);
      expect(c.frames, name).toEqual([]);
    }
  });

  it('any other frame first closes with 4001: the session never opens', async () => {
    const n = await node();
    for (const first of [{ type: 'subscribe', id: 1, channel: 'room:1' }, { type: 'ping', id: 1 }, { type: 'connect' }, { type: 'connect', token: 5 }, 'not json']) {
      const c = await open(n);
      if (typeof first === 'string') c.ws.send(first);
      else c.send(first);
      const closed = await c.closed;
      expect(closed.code, JSON.stringify(first)).toBe(4001);
      expect(closed.reason).toMatch(/first frame must be/);
      expect(c.frames).toEqual([]);
    }
  });

  it('no frame within the timeout closes with 4001', async () => {
    const n = await node();
    const c = await open(n);
    const started = Date.now();
    // Until its connect frame, the connection counts as a handshake in flight.
    expect(await metric(n.url('/metrics'), 'switchboard_handshakes_in_flight')).toBe(1);
    const closed = await c.closed;
    expect(closed).toMatchObject({ code: 4001, reason: expect.stringMatching(/no connect frame/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(DEFAULT_FIRST_FRAME_TIMEOUT_MS - 100);
    await vi.waitUntil(async () => (await metric(n.url('/metrics'), 'switchboard_handshakes_in_flight')) === 0, { timeout: 2000, interval: 20 });
  }, DEFAULT_FIRST_FRAME_TIMEOUT_MS + 5_000);

  it('--first-frame-timeout sets the wait: 300 ms closes a silent connection as 5 s does, and a connect frame in time still opens a session', async () => {
    const n = await startNodeProcess('first-frame-300', ['--secret', SECRET, '--first-frame-timeout', '300']);
    processes.push(n);
    const silent = await RawClient.open(n.ws());
    const started = Date.now();
    clients.push(silent);
    const prompt = await RawClient.open(n.ws());
    clients.push(prompt);
    prompt.send({ type: 'connect', token: await token('ria') });
    expect(await prompt.next((f) => f.type === 'welcome')).toMatchObject({ user: 'ria' });

    const closed = await silent.closed;
    const waited = Date.now() - started;
    expect(closed).toMatchObject({ code: 4001, reason: expect.stringMatching(/no connect frame/) });
    expect(waited).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(DEFAULT_FIRST_FRAME_TIMEOUT_MS / 2);
    expect(silent.frames).toEqual([]);
    // The session that identified in time outlives the timer that closed its neighbour.
    prompt.send({ type: 'ping', id: 1 });
    expect(await prompt.next((f) => f.type === 'pong')).toEqual({ type: 'pong', id: 1 });
    expect(prompt.ws.readyState).toBe(WebSocket.OPEN);
    await vi.waitUntil(async () => (await metric(n.url('/metrics'), 'switchboard_handshakes_in_flight')) === 0, { timeout: 2000, interval: 20 });
  }, 30_000);

  it('speaks MessagePack on a MessagePack connection', async () => {
    const n = await node();
    const ws = new WebSocket(`ws://127.0.0.1:${n.port}/ws`, [MSGPACK_SUBPROTOCOL]);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const first = new Promise<Buffer>((resolve) => ws.once('message', (data: Buffer) => resolve(data)));
    ws.send(encodeClientFrameBinary({ type: 'connect', token: await token('pia') }));
    expect(parseMsgpack(await first)).toMatchObject({ ok: true, value: { type: 'welcome', user: 'pia' } });
    ws.close();
  });

  it('keeps 401 before the upgrade for a bad token in the URL or the header, and for ?user= outside --insecure', async () => {
    const n = await node();
    const refused = (query: string, headers: Record<string, string> = {}) =>
      RawClient.open(`ws://127.0.0.1:${n.port}/ws${query}`, { headers }).then(
        (c) => (clients.push(c), 101),
        (err: { status?: number }) => err.status,
      );
    expect(await refused('?token=not.a.jwt')).toBe(401);
    expect(await refused('', { authorization: 'Bearer not.a.jwt' })).toBe(401);
    expect(await refused('?user=alice')).toBe(401);
  });
});
