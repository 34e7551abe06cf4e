/**
 * The shipped deploy/haproxy.cfg in a real HAProxy: `haproxy -c` accepts it
 * as shipped, it spreads WebSocket clients round-robin over the nodes (no
 * sticky sessions), messages still reach them across nodes, the server API
 * passes through (but not /metrics), its timeouts leave a healthy idle
 * WebSocket alone, and a node that drains leaves the rotation.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { withDefaults } from '../../src/server/options.js';
import { send } from '../fuzz/http.js';
import { api } from '../helpers/api.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { checkConfig, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { METRICS_BYPASSES } from '../helpers/path-bypasses.js';
import { RawClient } from '../helpers/raw-client.js';

const SHIPPED = fileURLToPath(new URL('../../deploy/haproxy.cfg', import.meta.url));

const bus = new MemoryBus();
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];
let haproxy: Haproxy;

/** HAProxy time values: `75s`, `500ms`, `2m`, or a bare number of milliseconds. */
function seconds(value: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(value);
  if (!m) throw new Error(`not an HAProxy time: ${value}`);
  const unit: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 };
  return Number(m[1]) * unit[m[2] ?? 'ms']!;
}

/** The `timeout <name> <value>` lines of the file's `defaults` section, in seconds. */
function defaultTimeouts(cfg: string): Map<string, number> {
  const section = /^defaults\b[^\n]*\n((?:[ \t][^\n]*\n|[ \t]*\n)*)/m.exec(cfg)?.[1] ?? '';
  const out = new Map<string, number>();
  for (const m of section.matchAll(/^\s*timeout\s+(\S+)\s+(\S+)/gm)) out.set(m[1]!, seconds(m[2]!));
  return out;
}

beforeAll(async () => {
  for (const id of ['hx-a', 'hx-b']) {
    nodes.push(await startNode({ ...TEST_NODE, nodeId: id, trustProxy: true }, { broker: new MemoryBroker(bus) }));
  }
  haproxy = await startHaproxy(nodes.map((n) => n.port));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await haproxy?.stop();
  await Promise.all(nodes.map((n) => n.close()));
});

describe('HAProxy with deploy/haproxy.cfg', () => {
  it('is accepted by `haproxy -c` exactly as shipped', () => {
    expect(checkConfig(SHIPPED)).toMatch(/Configuration file is valid/);
  });

  it('proxies WebSocket upgrades round-robin, and messages cross nodes', async () => {
    const ws = haproxy.url.replace('http', 'ws');
    for (let i = 0; i < 6; i++) clients.push(await RawClient.connect(`${ws}/ws?user=hx${i}`));
    // Strict alternation: no stickiness, and health checks do not skew the spread.
    expect(clients.map((c) => c.welcome.node)).toEqual(['hx-a', 'hx-b', 'hx-a', 'hx-b', 'hx-a', 'hx-b']);

    for (const c of clients) await c.request({ type: 'subscribe', channel: 'hx.room' });
    await clients[0]!.request({ type: 'publish', channel: 'hx.room', data: 'through haproxy' });
    for (const c of clients) expect(await c.next((f) => f.type === 'message')).toMatchObject({ data: 'through haproxy', from: 'hx0' });
  });

  it('proxies the server API and health checks', async () => {
    expect((await fetch(`${haproxy.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${haproxy.url}/readyz`)).status).toBe(200);
    const listed = await api(haproxy.url, 'GET', '/api/nodes');
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).toContain('hx-a');
    expect(JSON.stringify(listed.body)).toContain('hx-b');
    const sent = await api(haproxy.url, 'POST', '/api/send', { user: 'hx1', data: 'api via haproxy' });
    expect(sent).toMatchObject({ status: 200, body: { offset: expect.any(Number) } });
    expect(await clients[1]!.next((f) => f.type === 'message' && f.channel === 'user:hx1')).toMatchObject({ data: 'api via haproxy' });
  });

  it('does not expose /metrics, which each node serves without credentials', async () => {
    expect((await fetch(`${haproxy.url}/metrics`)).status).toBe(404);
    expect((await fetch(nodes[0]!.url('/metrics'))).status).toBe(200);
  });

  it('answers the spellings of /metrics that normalise to it with 404 of its own, never passing them on', async () => {
    for (const path of METRICS_BYPASSES) {
      const res = await send(haproxy.port, { method: 'GET', path });
      // The proxy's own 404 (HTML), not a node's (JSON): the request never reached a node.
      expect({ path, status: res.status, type: res.headers['content-type'] }).toEqual({ path, status: 404, type: expect.not.stringMatching(/json/) });
    }
    expect((await send(haproxy.port, { method: 'GET', path: '/healthz' })).status).toBe(200);
    expect((await send(haproxy.port, { method: 'GET', path: '/api/route?user=a.b' })).status).toBe(200);
  });

  it('keeps idle WebSockets longer than the heartbeat takes to find a dead one', () => {
    // A quiet client gets a server ping after `ping` seconds and has `pongTimeout` to answer:
    // a healthy connection is silent at most that long, so the tunnel timeout must be above it.
    const { ping, pongTimeout } = withDefaults();
    const timeouts = defaultTimeouts(readFileSync(SHIPPED, 'utf8'));
    expect(timeouts.get('tunnel')).toBeGreaterThan(ping + pongTimeout);
    // Before the upgrade the client and server timeouts apply; they must not cut a handshake short.
    expect(timeouts.get('client')).toBeGreaterThan(timeouts.get('http-request') ?? 0);
    expect(timeouts.get('server')).toBeGreaterThan(timeouts.get('connect') ?? 0);
  });

  it('takes a node that drains and stops out of rotation, and new clients go to the other', async () => {
    // close() drains (/readyz 503, then the listener closes); HAProxy's own checks take the node out.
    const closing = nodes[1]!.close();
    await haproxy.waitServer('node2', 'DOWN', 10_000);
    await closing;
    const ws = haproxy.url.replace('http', 'ws');
    const after: RawClient[] = [];
    for (let i = 0; i < 4; i++) after.push(await RawClient.connect(`${ws}/ws?user=hx-after${i}`));
    clients.push(...after);
    expect(after.map((c) => c.welcome.node)).toEqual(['hx-a', 'hx-a', 'hx-a', 'hx-a']);
  });
});
