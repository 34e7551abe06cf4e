/**
 * A close by the server for a fault (4129 rate limited above all) reaches
 * the app as an `error` event carrying a `ServerCloseError`, before the
 * `disconnected` event; routine moves (draining, moved, state lost, a lost
 * connection) do not.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ServerCloseError, SwitchboardClient, type ClientErrorEvent } from '../../src/client/index.js';
import { FakeServer, type FakeConnection } from './client-fake-server.js';

const servers: FakeServer[] = [];
const clients: SwitchboardClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A connected client; `seen` lists its `error` and `disconnected` events in order. */
async function connected() {
  const s = await FakeServer.start();
  servers.push(s);
  const client = new SwitchboardClient({ url: s.url, WebSocket, params: { user: 'alice' }, minReconnectDelay: 10, maxReconnectDelay: 40 });
  clients.push(client);
  const errors: ClientErrorEvent[] = [];
  const seen: string[] = [];
  client.on('error', (e) => {
    errors.push(e);
    seen.push(`error:${e.error instanceof ServerCloseError ? e.error.closeCode : e.error.code}`);
  });
  client.on('disconnected', (e) => seen.push(`disconnected:${e.code}`));
  client.connect();
  const conn = await s.connection(0);
  conn.welcome();
  await vi.waitUntil(() => client.state === 'connected', { timeout: 2000, interval: 5 });
  return { s, client, errors, seen };
}

const disconnect = (conn: FakeConnection, code: number, reason: string, reconnect: boolean): void => {
  conn.send({ type: 'disconnect', code, reason, reconnect });
  conn.ws.close(code, reason);
};

describe('closes by the server', () => {
  it('reports a 4129 as a ServerCloseError before the disconnected event, and reconnects', async () => {
    const { s, client, errors, seen } = await connected();
    const reason = 'rate limited: too many subscribe/unsubscribe frames (--max-subscribes-per-second)';
    disconnect(s.connections[0]!, 4129, reason, true);
    await vi.waitUntil(() => seen.length >= 2, { timeout: 2000, interval: 5 });
    expect(seen).toEqual(['error:4129', 'disconnected:4129']);
    const error = errors[0]?.error;
    expect(error).toBeInstanceOf(ServerCloseError);
    expect(error).toMatchObject({ code: 'server_close', closeCode: 4129, reason, reconnect: true, name: 'ServerCloseError' });
    expect(error?.message).toContain('4129');
    expect(errors[0]?.channel).toBeUndefined();
    // Still a reconnect with backoff, as before.
    (await s.connection(1)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2000, interval: 5 });
    expect(errors).toHaveLength(1);
  });

  it('reports a close code without a disconnect frame (4101 from the socket) and a terminal one (4001)', async () => {
    const { s, client, errors, seen } = await connected();
    s.connections[0]!.ws.close(4101, 'slow consumer');
    await vi.waitUntil(() => seen.length >= 2, { timeout: 2000, interval: 5 });
    expect(seen).toEqual(['error:4101', 'disconnected:4101']);
    expect(errors[0]?.error).toMatchObject({ closeCode: 4101, reason: 'slow consumer', reconnect: true });

    (await s.connection(1)).welcome();
    await vi.waitUntil(() => client.state === 'connected', { timeout: 2000, interval: 5 });
    disconnect(s.connections[1]!, 4001, 'token expired', false);
    await vi.waitUntil(() => client.state === 'disconnected', { timeout: 2000, interval: 5 });
    expect(seen.slice(2)).toEqual(['error:4001', 'disconnected:4001']);
    expect(errors[1]?.error).toMatchObject({ closeCode: 4001, reconnect: false });
  });

  it('does not report routine moves or a lost connection', async () => {
    const { s, client, errors, seen } = await connected();
    const moves: Array<(conn: FakeConnection) => void> = [
      (c) => disconnect(c, 4100, 'draining', true),
      (c) => disconnect(c, 4102, 'moved', true),
      (c) => disconnect(c, 4104, 'state lost', true),
      (c) => c.ws.close(1001, 'going away'),
      (c) => c.kill(),
    ];
    for (const [i, move] of moves.entries()) {
      move(s.connections[i]!);
      (await s.connection(i + 1)).welcome();
      await vi.waitUntil(() => client.state === 'connected' && seen.length === i + 1, { timeout: 2000, interval: 5 });
    }
    expect(seen).toEqual(['disconnected:4100', 'disconnected:4102', 'disconnected:4104', 'disconnected:1001', 'disconnected:1006']);
    expect(errors).toEqual([]);
  });
});
