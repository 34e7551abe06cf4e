/**
 * Token expiry against a real node: a session unrefreshed at its token's
 * `exp` is closed with 4105 at that time (not before, not long after); a
 * `refresh` frame keeps it alive past the first token's expiry; the SDK with
 * `getToken` refreshes on its own across several expiries without
 * reconnecting, and, when `getToken` fails until the expiry, is closed with
 * 4105 and reconnects with a fresh token.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient, type ConnectedEvent, type DisconnectedEvent } from '../../src/client/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { RawClient } from '../helpers/raw-client.js';
import { nextEvent, sleep } from '../helpers/wait.js';

const SECRET = 'a-test-secret-of-decent-length';
const nodes: SwitchboardNode[] = [];
const raws: RawClient[] = [];
const sdks: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of sdks.splice(0)) c.disconnect();
  await Promise.all(raws.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close()));
});

async function node(): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', secret: SECRET });
  nodes.push(n);
  return n;
}

/** A token for `sub` that expires at `exp` (Unix seconds). */
function token(sub: string, exp: number): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));
}

/** Unix seconds at least `s` seconds from now. */
const inSeconds = (s: number): number => Math.ceil(Date.now() / 1000) + s;

async function raw(n: SwitchboardNode, jwt: string): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?token=${jwt}`);
  raws.push(c);
  return c;
}

describe('token expiry on the server', () => {
  it('closes an unrefreshed session with 4105 at its expiry, within the sweep interval', async () => {
    const n = await node();
    const exp = inSeconds(2);
    const c = await raw(n, await token('alice', exp));
    expect(c.welcome.expires).toBe(exp);
    const closed = await c.closed;
    const at = Date.now();
    expect(closed.code).toBe(4105);
    expect(c.frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4105, reconnect: true });
    // Same clock as the node: never before the expiry; the sweep runs every second.
    expect(at).toBeGreaterThanOrEqual(exp * 1000);
    expect(at).toBeLessThan(exp * 1000 + 2_000);
  });

  it('keeps a refreshed session open past its first token; a token of another user is forbidden', async () => {
    const n = await node();
    const first = inSeconds(2);
    const c = await raw(n, await token('bob', first));
    const other = await c.request({ type: 'refresh', id: 1, token: await token('mallory', inSeconds(60)) });
    expect(other).toMatchObject({ error: { code: 'forbidden' } });
    const later = inSeconds(60);
    const reply = await c.request({ type: 'refresh', id: 2, token: await token('bob', later) });
    expect(reply).toEqual({ type: 'reply', id: 2, result: { expires: later } });
    await sleep(first * 1000 + 1_500 - Date.now());
    c.send({ type: 'ping', id: 3 });
    expect(await c.next((f) => f.type === 'pong' || f.type === 'disconnect')).toEqual({ type: 'pong', id: 3 });
  });
});

describe('the SDK with getToken', () => {
  function sdk(n: SwitchboardNode, getToken: () => Promise<string>) {
    const c = new SwitchboardClient({ url: `ws://127.0.0.1:${n.port}/ws`, WebSocket, getToken, minReconnectDelay: 20, maxReconnectDelay: 200 });
    sdks.push(c);
    const connects: ConnectedEvent[] = [];
    const drops: DisconnectedEvent[] = [];
    c.on('connected', (e) => connects.push(e));
    c.on('disconnected', (e) => drops.push(e));
    c.on('error', () => undefined);
    return { c, connects, drops };
  }

  it('refreshes before each expiry and keeps one connection across two expiries', async () => {
    const n = await node();
    const issued: number[] = [];
    const { c, connects, drops } = sdk(n, async () => {
      const exp = inSeconds(2);
      issued.push(exp);
      return token('carol', exp);
    });
    c.connect();
    await nextEvent((l) => c.once('connected', l), 10_000, 'the client to connect');
    const firstExp = issued[0] as number;
    // Past two expiries of two-to-three-second tokens.
    await expect.poll(() => issued.filter((e) => e > firstExp).length, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(2);
    const secondExp = issued.find((e) => e > firstExp) as number;
    await sleep(secondExp * 1000 + 1_500 - Date.now());
    expect(connects).toHaveLength(1);
    expect(drops).toEqual([]);
    expect(c.state).toBe('connected');
  });

  it('when getToken fails until the expiry, gets 4105 and reconnects with a fresh token', async () => {
    const n = await node();
    let failing = false;
    const issued: number[] = [];
    const { c, connects, drops } = sdk(n, async () => {
      if (failing) throw new Error('token service down');
      const exp = inSeconds(2);
      issued.push(exp);
      return token('dave', exp);
    });
    c.connect();
    await nextEvent((l) => c.once('connected', l), 10_000, 'the client to connect');
    failing = true;
    c.on('disconnected', () => {
      failing = false;
    });
    await expect.poll(() => connects.length, { timeout: 10_000, interval: 50 }).toBe(2);
    expect(drops[0]).toMatchObject({ code: 4105, reconnect: true });
    // The second connection was made with a token issued after the first expired.
    expect(issued).toHaveLength(2);
    expect(issued[1]).toBeGreaterThan(issued[0] as number);
  });
});
