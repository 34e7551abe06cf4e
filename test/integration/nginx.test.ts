/**
 * The shipped deploy/nginx.conf in a real nginx: it passes `nginx -t`,
 * spreads WebSocket clients round-robin over the nodes (no sticky sessions)
 * and messages still reach them across nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { send } from '../fuzz/http.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { METRICS_BYPASSES } from '../helpers/path-bypasses.js';
import { RawClient } from '../helpers/raw-client.js';

const bus = new MemoryBus();
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];
let nginx: Nginx;

beforeAll(async () => {
  for (const id of ['lb-a', 'lb-b']) {
    nodes.push(await startNode({ ...TEST_NODE, nodeId: id, trustProxy: true }, { broker: new MemoryBroker(bus) }));
  }
  nginx = await startNginx(nodes.map((n) => n.port));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await nginx?.stop();
  await Promise.all(nodes.map((n) => n.close()));
});

describe('nginx with deploy/nginx.conf', () => {
  it('proxies WebSocket upgrades round-robin, and messages cross nodes', async () => {
    const ws = nginx.url.replace('http', 'ws');
    for (let i = 0; i < 6; i++) clients.push(await RawClient.connect(`${ws}/ws?user=lb${i}`));
    const byNode = new Map<string, number>();
    for (const c of clients) byNode.set(c.welcome.node, (byNode.get(c.welcome.node) ?? 0) + 1);
    expect([...byNode.keys()].sort()).toEqual(['lb-a', 'lb-b']);
    expect([...byNode.values()]).toEqual([3, 3]);

    for (const c of clients) await c.request({ type: 'subscribe', channel: 'lb.room' });
    const sender = clients[0]!;
    await sender.request({ type: 'publish', channel: 'lb.room', data: 'through nginx' });
    for (const c of clients) expect(await c.next((f) => f.type === 'message')).toMatchObject({ data: 'through nginx', from: 'lb0' });
  });

  it('proxies the server API and health checks', async () => {
    expect((await fetch(`${nginx.url}/healthz`)).status).toBe(200);
    const nodesSeen = await api(nginx.url, 'GET', '/api/nodes');
    expect(nodesSeen.status).toBe(200);
    const sent = await api(nginx.url, 'POST', '/api/send', { user: 'lb1', data: 'api via nginx' });
    expect(sent).toMatchObject({ status: 200, body: { offset: expect.any(Number) } });
    expect(await clients[1]!.next((f) => f.type === 'message' && f.channel === 'user:lb1')).toMatchObject({ data: 'api via nginx' });
  });

  it('answers the spellings of /metrics that normalise to it with 404 of its own, never passing them on', async () => {
    for (const path of METRICS_BYPASSES) {
      const res = await send(nginx.port, { method: 'GET', path });
      // nginx's own answer (HTML), not a node's (JSON): the request never reached a node. A path that climbs above the root is 400 there.
      const status = path === '/.%2e/metrics' ? 400 : 404;
      expect({ path, status: res.status, type: res.headers['content-type'] }).toEqual({ path, status, type: expect.not.stringMatching(/json/) });
    }
    expect((await send(nginx.port, { method: 'GET', path: '/healthz' })).status).toBe(200);
    expect((await send(nginx.port, { method: 'GET', path: '/api/route?user=a.b' })).status).toBe(200);
  });

  it('sets the WebSocket read timeout above the heartbeat (ping after 25 s quiet + 10 s to answer)', async () => {
    // Read from the file: a quiet client gets a server ping after 25 s, so any read timeout above 35 s is safe.
    const { readFileSync } = await import('node:fs');
    const conf = readFileSync(new URL('../../deploy/nginx.conf', import.meta.url), 'utf8');
    const read = Number(/location \/ws \{[^}]*proxy_read_timeout (\d+)s;/s.exec(conf)?.[1]);
    expect(read).toBeGreaterThan(25 + 10);
  });
});
