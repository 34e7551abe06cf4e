/**
 * What a node's HTTP side does to hostile clients (docs/security.md "HTTP,
 * origins and what to put in front of a node"): silent sockets and header
 * tricklers are cut, the number of sockets is capped, paths that are not in
 * normal form are no endpoint, the API takes only JSON bodies, browser pages
 * of other origins cannot open a WebSocket, pages carry security headers,
 * and metrics can move to a listener of their own.
 */
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { hardenServer, maxTcpConnections } from '../../src/server/http/harden.js';
import { startNode } from '../../src/server/node.js';
import { withDefaults } from '../../src/server/options.js';
import { send } from '../fuzz/http.js';
import { api } from '../helpers/api.js';
import { TEST_NODE, useNodes } from '../helpers/fixture.js';
import { metric } from '../helpers/metrics.js';
import { METRICS_BYPASSES } from '../helpers/path-bypasses.js';

const { node } = useNodes();
const JSON_AUTH = { authorization: 'Bearer test-key', 'content-type': 'application/json' };

/** A TCP connection to `port` and when it closed (ms after it opened), with everything it received. */
interface Probe {
  socket: Socket;
  received: () => string;
  closed: Promise<number>;
}

function probe(port: number): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const started = Date.now();
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks).toString('latin1'), closed }));
    socket.once('error', reject);
  });
}

/** Resolves with `p`'s value, or `undefined` once `ms` have passed. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}

/** The status line's code of a raw WebSocket upgrade to `path` with `headers` (the socket is then dropped). */
async function upgradeStatus(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  const p = await probe(port);
  const lines = Object.entries({
    host: `127.0.0.1:${port}`,
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...headers,
  }).map(([k, v]) => `${k}: ${v}\r\n`);
  p.socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('')}\r\n`);
  for (let i = 0; i < 100 && !/^HTTP\/1\.1 \d{3}/.test(p.received()); i++) await new Promise((r) => setTimeout(r, 20));
  p.socket.destroy();
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(p.received())?.[1] ?? 0);
}

describe('sockets before any request or upgrade', () => {
  it('closes silent TCP connections after --http-idle-timeout', async () => {
    const n = await node({ httpIdleTimeout: 1 });
    const probes = await Promise.all(Array.from({ length: 100 }, () => probe(n.port)));
    const closedAfter = await within(Promise.all(probes.map((p) => p.closed)), 5000);
    probes.forEach((p) => p.socket.destroy());
    expect(closedAfter, 'silent sockets still open after 5 s').toBeDefined();
    for (const ms of closedAfter ?? []) expect(ms).toBeGreaterThanOrEqual(900);
  });

  it('answers a header trickle with 408 and closes it after --headers-timeout, though each byte arrives in time', async () => {
    const n = await node({ headersTimeout: 1, httpIdleTimeout: 60 });
    const p = await probe(n.port);
    p.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let i = 0;
    const trickle = setInterval(() => p.socket.writable && p.socket.write(`X-${i++}: y\r\n`), 100);
    const closedAfter = await within(p.closed, 4000);
    clearInterval(trickle);
    p.socket.destroy();
    expect(closedAfter, 'header trickle still open after 4 s').toBeDefined();
    expect(p.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('keeps at most --max-tcp-connections sockets open; a socket past it is closed at once', async () => {
    const n = await node({ maxTcpConnections: 5 });
    const held = await Promise.all(Array.from({ length: 5 }, () => probe(n.port)));
    await new Promise((r) => setTimeout(r, 100));
    const extra = await probe(n.port);
    expect(await within(extra.closed, 2000), 'the sixth socket was kept').toBeDefined();
    for (const p of held) expect(p.socket.destroyed).toBe(false);
    held.forEach((p) => p.socket.destroy());
    // Room again once they are gone.
    await Promise.all(held.map((p) => p.closed));
    await new Promise((r) => setTimeout(r, 100));
    expect((await send(n.port, { method: 'GET', path: '/healthz' })).status).toBe(200);
  });

  it('leaves a request alone while its answer takes longer than the idle timeout', async () => {
    const server = createServer((_req, res) => void setTimeout(() => res.end('late'), 1500));
    hardenServer(server, { httpIdleTimeout: 1, headersTimeout: 1, limits: { maxConnections: 10 } });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await send((server.address() as AddressInfo).port, { method: 'GET', path: '/' });
      expect([res.status, res.text]).toEqual([200, 'late']);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('caps sockets at --max-connections + 1024 unless told otherwise', () => {
    expect(maxTcpConnections(withDefaults({ limits: { maxConnections: 10 } }))).toBe(1034);
    expect(maxTcpConnections(withDefaults({ maxTcpConnections: 7 }))).toBe(7);
  });
});

describe('paths', () => {
  it('are taken as written: a path that normalises to /metrics is no endpoint (404)', async () => {
    const n = await node();
    expect((await send(n.port, { method: 'GET', path: '/metrics' })).status).toBe(200);
    for (const path of METRICS_BYPASSES) {
      const res = await send(n.port, { method: 'GET', path });
      expect({ path, status: res.status, code: (res.json as { error?: { code?: string } } | undefined)?.error?.code }).toEqual({ path, status: 404, code: 'not_found' });
    }
    expect((await send(n.port, { method: 'GET', path: '/api/./nodes', headers: JSON_AUTH })).status).toBe(404);
  });

  it('of upgrades too: /./ws is refused with 404', async () => {
    const n = await node();
    expect(await upgradeStatus(n.port, '/ws?user=a')).toBe(101);
    for (const path of ['/./ws?user=a', '/%2e/ws?user=a', '/x/../ws?user=a', '//ws?user=a']) expect({ path, status: await upgradeStatus(n.port, path) }).toEqual({ path, status: 404 });
  });
});

describe('the server API', () => {
  it('takes only application/json bodies: text/plain, forms and no type get 415', async () => {
    const n = await node();
    const body = new TextEncoder().encode('{"channel":"a","data":1}');
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const headers: Record<string, string> = { authorization: 'Bearer test-key', ...(type === undefined ? {} : { 'content-type': type }) };
      const res = await send(n.port, { method: 'POST', path: '/api/publish', headers, body });
      expect({ type, status: res.status, json: res.json }).toEqual({ type, status: 415, json: { error: { code: 'bad_request', message: expect.stringContaining('application/json') } } });
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
      expect((await send(n.port, { method: 'POST', path: '/api/publish', headers: { ...JSON_AUTH, 'content-type': type }, body })).status).toBe(200);
    }
  });

  it('refuses a cross-site form post even when --insecure leaves it open without a key', async () => {
    const n = await node({ apiKeys: [] });
    const body = new TextEncoder().encode('{"user":"victim","data":"forged"}');
    const headers = { 'content-type': 'text/plain', origin: 'http://evil.example' };
    expect((await send(n.port, { method: 'POST', path: '/api/send', headers, body })).status).toBe(415);
    expect((await send(n.port, { method: 'POST', path: '/api/disconnect', headers, body })).status).toBe(415);
  });
});

describe('Origin of WebSocket upgrades', () => {
  it("allows no Origin (not a browser) and the node's own, refuses others with 403, counted as reason origin", async () => {
    const n = await node();
    const own = `http://127.0.0.1:${n.port}`;
    expect(await upgradeStatus(n.port, '/ws?user=a')).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: own })).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: `https://127.0.0.1:${n.port}` })).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: `http://127.0.0.1:${n.port + 1}` })).toBe(403);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'null' })).toBe(403);
    // The Host is the client's word, but a browser sends the one it connects to: a page elsewhere cannot match it.
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'http://evil.example', host: 'localhost:1' })).toBe(403);
    expect(await metric(n.url('/metrics'), 'switchboard_connections_rejected_total', { reason: 'origin' })).toBe(4);
  });

  it('allows what --allowed-origins matches, * standing for any run of characters', async () => {
    const n = await node({ allowedOrigins: ['https://*.example.com', 'http://localhost:3000'] });
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'https://app.example.com' })).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'HTTPS://App.Example.com' })).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'http://localhost:3000' })).toBe(101);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'http://app.example.com' })).toBe(403);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'https://example.com' })).toBe(403);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'https://example.com.evil.net' })).toBe(403);
    expect(await upgradeStatus(n.port, '/ws?user=a', { origin: 'http://localhost:30000' })).toBe(403);
    const any = await node({ allowedOrigins: ['*'] });
    expect(await upgradeStatus(any.port, '/ws?user=a', { origin: 'http://evil.example' })).toBe(101);
  });
});

describe('Origin of WebSocket upgrades in a cluster', () => {
  it("allows the origins of the cluster's other nodes, whose pages connect to every node (dashboard, redirects)", async () => {
    const bus = new MemoryBus();
    const [a, b] = await Promise.all(['origin-a', 'origin-b'].map((nodeId) => startNode({ ...TEST_NODE, nodeId }, { broker: new MemoryBroker(bus) })));
    try {
      const lone = await node({ nodeId: 'origin-lone' });
      await vi.waitFor(async () => expect(JSON.stringify((await api(a!.url(), 'GET', '/api/nodes')).body)).toContain('origin-b'), { timeout: 10_000, interval: 100 });
      expect(await upgradeStatus(a!.port, '/ws?user=a', { origin: `http://127.0.0.1:${b!.port}` })).toBe(101);
      expect(await upgradeStatus(a!.port, '/ws?user=a', { origin: `http://127.0.0.1:${lone.port}` })).toBe(403);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });
});

describe('pages', () => {
  it('carry a Content-Security-Policy, X-Frame-Options, nosniff and a Referrer-Policy', async () => {
    const n = await node();
    for (const path of ['/', '/admin']) {
      const res = await send(n.port, { method: 'GET', path });
      expect(res.status).toBe(200);
      expect(res.headers['content-security-policy']).toMatch(/default-src 'none'/);
      expect(res.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
      expect(res.headers['content-security-policy']).not.toMatch(/script-src[^;]*'unsafe-inline'/);
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
    }
    for (const path of ['/switchboard.js', '/admin/admin.js', '/admin/admin.css']) {
      expect((await send(n.port, { method: 'GET', path })).headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('do not include the sourcemap unless --serve-sourcemaps', async () => {
    const n = await node();
    expect((await send(n.port, { method: 'GET', path: '/switchboard.js.map' })).status).toBe(404);
    const withMaps = await node({ serveSourcemaps: true });
    const res = await send(withMaps.port, { method: 'GET', path: '/switchboard.js.map' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ version: 3 });
  });
});

describe('--metrics-port', () => {
  it('serves /metrics on a listener of its own, and no longer on the main port', async () => {
    const n = await node({ metricsPort: 0 });
    expect(n.metricsPort).toBeGreaterThan(0);
    expect(n.metricsPort).not.toBe(n.port);
    const res = await send(n.metricsPort ?? 0, { method: 'GET', path: '/metrics' });
    expect(res.status).toBe(200);
    expect(res.text).toContain('switchboard_connections');
    expect((await send(n.port, { method: 'GET', path: '/metrics' })).status).toBe(404);
    expect((await send(n.metricsPort ?? 0, { method: 'GET', path: '/healthz' })).status).toBe(404);
    expect((await send(n.metricsPort ?? 0, { method: 'GET', path: '/./metrics' })).status).toBe(404);
    expect((await send(n.port, { method: 'GET', path: '/healthz' })).status).toBe(200);
  });

  it('is off by default: /metrics on the main port', async () => {
    const n = await node();
    expect(n.metricsPort).toBeUndefined();
    expect((await send(n.port, { method: 'GET', path: '/metrics' })).status).toBe(200);
  });
});
