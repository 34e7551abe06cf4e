/**
 * The OpenAPI description (`GET /api/openapi.json`) held against a running
 * node: every answer it lists, success and refusal, is produced for real and
 * validated against the schema the description gives for its status; every
 * route the router serves is described; the document is OpenAPI 3.1 shaped
 * and every `$ref` resolves.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { ErrorCode, isValidChannel, isValidUserId, SwitchboardError } from '../../src/protocol/index.js';
import { ServerApi } from '../../src/server/http/api.js';
import { OPENAPI, type Method, type Operation, type Response } from '../../src/server/http/openapi.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { resolvePointer, unknownKeywords, validate } from '../helpers/json-schema.js';
import { RawClient } from '../helpers/raw-client.js';

const MAX_BODY = 2048;
/** The memory broker, which the test can declare unreachable: `/readyz` and publishes then answer 503. */
const broker = new MemoryBroker(new MemoryBus());
let reachable = true;
Object.defineProperty(broker, 'ready', { get: () => reachable });
let node: SwitchboardNode;
const clients: RawClient[] = [];

beforeAll(async () => {
  node = await startNode(
    {
      ...TEST_NODE,
      publishDeadline: 300,
      limits: { maxBodyBytes: MAX_BODY },
      namespaces: { volatile: { historySize: 0, historyTtl: 0, presence: false, publish: true, private: false } },
    },
    { broker },
  );
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await node.close();
});

async function connect(user: string): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${node.port}/ws?user=${user}`);
  clients.push(c);
  return c;
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
  /** The request body sent, when it was JSON. */
  sent?: unknown;
}

/** Answers checked so far, as `METHOD template status`. */
const seen = new Set<string>();

/** Calls the node as a business service would: `key` null for no Authorization header. */
async function call(
  method: string,
  path: string,
  opts: { body?: unknown; key?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  const key = opts.key === undefined ? 'test-key' : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const res = await fetch(node.url(path), { method, headers, body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  const answer: Answer = { status: res.status, headers: res.headers, body: type.startsWith('application/json') ? JSON.parse(text) : text };
  if (opts.body !== undefined && typeof opts.body !== 'string') answer.sent = opts.body;
  return answer;
}

function operationAt(template: string, method: string): Operation {
  const op = OPENAPI.paths[template]?.[method.toLowerCase() as Method];
  if (!op) throw new Error(`the description has no ${method} ${template}`);
  return op;
}

/** The response the description gives for `status`, its reference resolved. */
function responseFor(op: Operation, status: number): Response {
  const r = op.responses[String(status)] ?? op.responses.default;
  if (!r) throw new Error(`${op.operationId} describes no ${status} and no default`);
  return ('$ref' in r ? resolvePointer(OPENAPI, r.$ref) : r) as Response;
}

/**
 * Validates a real answer against the description and records it; returns
 * its body. A request the node accepted must conform to the description too.
 */
function holds(template: string, method: string, answer: Answer, expected: number): unknown {
  expect(answer.status, JSON.stringify(answer.body)).toBe(expected);
  const op = operationAt(template, method);
  // Every status the node really answers is listed; `default` stands only for a fault of the node (500).
  expect(op.responses[String(answer.status)], `${op.operationId} does not list ${answer.status}`).toBeDefined();
  const request = op.requestBody?.content['application/json']?.schema;
  if (answer.status === 200 && request) expect(validate(OPENAPI, request, answer.sent), `${op.operationId} request`).toEqual([]);
  const response = responseFor(op, answer.status);
  const type = (answer.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  const media = response.content?.[type];
  expect(media, `${op.operationId} ${answer.status}: content type ${type} is not described`).toBeDefined();
  expect(validate(OPENAPI, media?.schema, answer.body), `${op.operationId} ${answer.status}`).toEqual([]);
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    const value = answer.headers.get(name);
    if (header.required) expect(value, `${op.operationId}: header ${name}`).not.toBeNull();
    if (value !== null) expect(validate(OPENAPI, header.schema, value), `${op.operationId}: header ${name}`).toEqual([]);
  }
  seen.add(`${method} ${template} ${answer.status}`);
  return answer.body;
}

/**
 * Calls `template` (or `opts.path`, a concrete path for it) and holds the
 * answer, which must have `status`, to the description.
 */
async function expectAnswer(
  method: string,
  template: string,
  status: number,
  opts: Parameters<typeof call>[2] & { path?: string } = {},
): Promise<Answer> {
  const answer = await call(method, opts.path ?? template, opts);
  holds(template, method, answer, status);
  return answer;
}

/** Each operation of the description, by method and path template. */
const operations = Object.entries(OPENAPI.paths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, op]) => ({ path, method: method.toUpperCase(), op: op as Operation })),
);

describe('the description itself', () => {
  it('is OpenAPI 3.1 shaped, served as written, and every $ref resolves', async () => {
    expect(OPENAPI.openapi).toBe('3.1.0');
    expect(Object.keys(OPENAPI.paths).length).toBeGreaterThan(0);
    expect(OPENAPI.components.securitySchemes.apiKey).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    const refs: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v !== 'object' || v === null) return;
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string') refs.push(x);
        else walk(x);
      }
    };
    walk(OPENAPI);
    expect(refs.length).toBeGreaterThan(20);
    for (const r of refs) expect(() => resolvePointer(OPENAPI, r), r).not.toThrow();
    const ids = operations.map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, op } of operations) {
      expect(op.responses['200'], op.operationId).toBeDefined();
      for (const name of path.match(/\{[^}]+\}/g) ?? []) {
        expect(op.parameters?.some((p) => p.in === 'path' && `{${p.name}}` === name && p.required), `${op.operationId} ${name}`).toBe(true);
      }
    }
    const served = (await expectAnswer('GET', '/api/openapi.json', 200, { key: null })).body;
    expect(served).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
  });

  it('uses only the schema keywords the validator checks', () => {
    const schemas: Array<[string, unknown]> = Object.entries(OPENAPI.components.schemas);
    for (const { op } of operations) {
      for (const p of op.parameters ?? []) schemas.push([`${op.operationId} ${p.name}`, p.schema]);
      for (const status of Object.keys(op.responses)) {
        const response = responseFor(op, status === 'default' ? 599 : Number(status));
        for (const [type, m] of Object.entries(response.content ?? {})) schemas.push([`${op.operationId} ${status} ${type}`, m.schema]);
      }
    }
    expect(schemas.flatMap(([where, s]) => unknownKeywords(s, where))).toEqual([]);
  });

  it('spells channel names, user ids and idempotency keys as the node checks them', () => {
    const pattern = (name: string) => new RegExp(OPENAPI.components.schemas[name]?.pattern as string, 'u');
    const long = [250, 251, 255, 256].map((n) => 'x'.repeat(n));
    const samples = ['a', 'room:1', 'user:ann', 'a b', '', 'é', 'a/b', 'k=v,w@h.-_', ...long];
    for (const s of samples) {
      expect(pattern('ChannelName').test(s), s).toBe(isValidChannel(s));
      expect(pattern('UserId').test(s), s).toBe(isValidUserId(s));
    }
  });

  it('spells idempotency keys as the node checks them', async () => {
    const pattern = new RegExp(OPENAPI.components.schemas.IdempotencyKey?.pattern as string, 'u');
    const keys = ['k-1', '~!{}', 'x'.repeat(128), 'x'.repeat(129), 'a b', '', 'é', '\t'];
    for (const idempotencyKey of keys) {
      const answer = await call('POST', '/api/publish', { body: { channel: 'volatile:keys', data: 1, idempotencyKey } });
      expect(answer.status === 200, idempotencyKey).toBe(pattern.test(idempotencyKey));
    }
  });

  it('lists 415 (a body not sent as JSON), 400 and 413 for every operation that takes a body, and only for those', () => {
    const withBody = operations.filter((o) => o.op.requestBody);
    // The router refuses every POST whose body is not JSON: those are the operations with a body.
    expect(withBody.map((o) => `${o.method} ${o.path}`).sort()).toEqual(
      ServerApi.endpoints.filter((e) => e.method === 'POST').map((e) => `POST ${e.path}`).sort(),
    );
    for (const { op } of withBody) {
      expect(Object.keys(op.requestBody?.content ?? {}), op.operationId).toEqual(['application/json']);
      expect(op.responses['415'], op.operationId).toEqual({ $ref: '#/components/responses/UnsupportedMediaType' });
      expect(op.responses['413'], op.operationId).toEqual({ $ref: '#/components/responses/TooLarge' });
      expect(op.responses['400'], op.operationId).toEqual({ $ref: '#/components/responses/BadRequest' });
    }
    for (const { op } of operations.filter((o) => !o.op.requestBody)) expect(op.responses['415'], op.operationId).toBeUndefined();
    const schema = responseFor(operationAt('/api/publish', 'POST'), 415).content?.['application/json']?.schema;
    expect(validate(OPENAPI, schema, { error: { code: 'bad_request', message: 'm' } })).toEqual([]);
    expect(validate(OPENAPI, schema, { error: { code: 'too_large', message: 'm' } })).not.toEqual([]);
  });

  it('describes every route the router serves, and serves every path it describes', () => {
    const routes = [...ServerApi.endpoints.map((e) => `${e.method} ${e.path}`), 'GET /healthz', 'GET /readyz', 'GET /metrics'];
    expect(operations.map((o) => `${o.method} ${o.path}`).sort()).toEqual([...routes].sort());
    for (const e of ServerApi.endpoints) {
      expect(operationAt(e.path, e.method).security, e.path).toEqual(e.open ? [] : undefined);
    }
  });
});

describe('real answers', () => {
  it('publish and send: 200 (a repeated key marked replayed), 400, 413, 503', async () => {
    const first = await expectAnswer('POST', '/api/publish', 200, { body: { channel: 'room:1', data: { n: 1 }, idempotencyKey: 'k-1' } });
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await expectAnswer('POST', '/api/publish', 200, {
      body: { channel: 'room:1', data: { n: 1 } },
      headers: { 'idempotency-key': 'k-1' },
    });
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    await expectAnswer('POST', '/api/publish', 200, { body: { channel: 'volatile:x', data: 1 } });
    await expectAnswer('POST', '/api/publish', 400, { body: { channel: 'room:1' } });
    await expectAnswer('POST', '/api/publish', 400, { body: '{"channel": ' });
    await expectAnswer('POST', '/api/publish', 413, { body: { channel: 'room:1', data: 'x'.repeat(MAX_BODY) } });
    await expectAnswer('POST', '/api/send', 200, { body: { user: 'ann', data: 'hi' } });
    await expectAnswer('POST', '/api/send', 400, { body: { user: 'a b', data: 'hi' } });
    await expectAnswer('POST', '/api/send', 413, { body: { user: 'ann', data: 'x'.repeat(MAX_BODY) } });
    reachable = false;
    try {
      await expectAnswer('POST', '/api/publish', 503, { body: { channel: 'room:1', data: 1 } });
      await expectAnswer('POST', '/api/send', 503, { body: { user: 'ann', data: 1 } });
      await expectAnswer('GET', '/readyz', 503, { key: null });
    } finally {
      reachable = true;
    }
  });

  it('broadcast: 200 with one result per channel, 400, 413', async () => {
    const b = await expectAnswer('POST', '/api/broadcast', 200, { body: { channels: ['room:1', 'room:2', 'volatile:y'], data: 2 } });
    expect((b.body as { results: unknown[] }).results).toHaveLength(3);
    await expectAnswer('POST', '/api/broadcast', 400, { body: { channels: [], data: 2 } });
    await expectAnswer('POST', '/api/broadcast', 413, { body: { channels: ['room:1'], data: 'x'.repeat(MAX_BODY) } });
  });

  it('batch: 200 with one result per command (positions, a repeat marked replayed), 400, 413', async () => {
    const commands = [
      { publish: { channel: 'room:1', data: 1, idempotencyKey: 'batch-k-1' } },
      { send: { user: 'ann', data: 2 } },
      { publish: { channel: 'volatile:z', data: 3 } },
    ];
    await expectAnswer('POST', '/api/batch', 200, { body: { commands } });
    const again = await expectAnswer('POST', '/api/batch', 200, { body: { commands: commands.slice(0, 1) } });
    expect((again.body as { results: Array<{ replayed?: boolean }> }).results[0]?.replayed).toBe(true);
    await expectAnswer('POST', '/api/batch', 400, { body: { commands: [] } });
    await expectAnswer('POST', '/api/batch', 413, { body: { commands: [{ publish: { channel: 'room:1', data: 'x'.repeat(MAX_BODY) } }] } });
  });

  it('users, presence and history: 200 with content, 400, 404, 503', async () => {
    const ann = await connect('ann');
    await ann.request({ type: 'subscribe', channel: 'room:1' });
    const user = (await expectAnswer('GET', '/api/users/{user}', 200, { path: '/api/users/ann' })).body;
    expect(user).toMatchObject({ online: true, sessions: [{ node: node.id }] });
    await expectAnswer('GET', '/api/users/{user}', 400, { path: '/api/users/a%20b' });
    const presence = (await expectAnswer('GET', '/api/presence/{channel}', 200, { path: '/api/presence/room%3A1' })).body;
    expect(presence).toMatchObject({ members: [{ user: 'ann' }] });
    await expectAnswer('GET', '/api/presence/{channel}', 400, { path: '/api/presence/%ZZ' });
    await expectAnswer('GET', '/api/presence/{channel}', 404, { path: '/api/presence/volatile:x' });
    const history = (await expectAnswer('GET', '/api/history/{channel}', 200, { path: '/api/history/room:1?since=0&limit=10' })).body;
    expect((history as { messages: unknown[] }).messages.length).toBeGreaterThan(0);
    await expectAnswer('GET', '/api/history/{channel}', 400, { path: '/api/history/room:1?since=-1' });
    await expectAnswer('GET', '/api/history/{channel}', 404, { path: '/api/history/volatile:x' });
    // The broker fails the reads: each answers 503.
    const presenceDown = vi.spyOn(broker.store, 'presence').mockRejectedValue(new Error('broker down'));
    const historyDown = vi.spyOn(broker.store, 'history').mockRejectedValue(new Error('broker down'));
    try {
      await expectAnswer('GET', '/api/users/{user}', 503, { path: '/api/users/ann' });
      await expectAnswer('GET', '/api/presence/{channel}', 503, { path: '/api/presence/room%3A1' });
      await expectAnswer('GET', '/api/history/{channel}', 503, { path: '/api/history/room:1?since=0' });
    } finally {
      presenceDown.mockRestore();
      historyDown.mockRestore();
    }
  });

  it('disconnect: 200 with the count, 400, 413, 503', async () => {
    await connect('bob');
    expect((await expectAnswer('POST', '/api/disconnect', 200, { body: { user: 'bob', code: 4100 } })).body).toEqual({ sessions: 1 });
    await expectAnswer('POST', '/api/disconnect', 400, { body: { user: 'bob', code: 1000 } });
    await expectAnswer('POST', '/api/disconnect', 413, { body: { user: 'bob', reason: 'x'.repeat(MAX_BODY) } });
    // A lone node never has a cluster request waiting: the cluster refuses as it does with 1000 in flight.
    const full = vi
      .spyOn(Cluster.prototype, 'requestAll')
      .mockRejectedValueOnce(new SwitchboardError(ErrorCode.Unavailable, 'too many cluster requests in flight'));
    try {
      await expectAnswer('POST', '/api/disconnect', 503, { body: { user: 'bob' } });
    } finally {
      full.mockRestore();
    }
  });

  it('nodes, the cluster view, route, health, readiness and metrics: 200; route 400', async () => {
    await expectAnswer('GET', '/api/nodes', 200);
    await expectAnswer('GET', '/api/admin/cluster', 200);
    const route = await expectAnswer('GET', '/api/route', 200, { path: '/api/route?user=ann', key: null });
    expect(route.body).toMatchObject({ user: 'ann', node: node.id });
    expect(route.headers.get('access-control-allow-origin')).toBe('*');
    await expectAnswer('GET', '/api/route', 400, { key: null });
    await expectAnswer('GET', '/healthz', 200, { key: null });
    await expectAnswer('GET', '/readyz', 200, { key: null });
    const metrics = (await expectAnswer('GET', '/metrics', 200, { key: null })).body;
    expect(metrics).toContain('switchboard_');
  });

  it('every operation that takes a body refuses one not sent as JSON (415), before reading it', async () => {
    const withBody = operations.filter((o) => o.op.requestBody);
    expect(withBody.length).toBeGreaterThan(0);
    // A body every operation would take as JSON: only its type is wrong.
    const json = JSON.stringify({
      channel: 'room:415',
      user: 'ann',
      data: 1,
      channels: ['room:415'],
      commands: [{ publish: { channel: 'room:415', data: 1 } }],
    });
    for (const { path, method } of withBody) {
      for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded']) {
        const answer = await expectAnswer(method, path, 415, { body: json, headers: { 'content-type': type } });
        expect(answer.body, `${path} ${type}`).toMatchObject({ error: { code: 'bad_request' } });
      }
    }
    // Nothing was published.
    const history = await expectAnswer('GET', '/api/history/{channel}', 200, { path: '/api/history/room:415' });
    expect(history.body).toMatchObject({ offset: 0, messages: [] });
  });

  it('every operation that needs a key refuses a call without one, or with a wrong one (401)', async () => {
    const sample: Record<string, string> = { user: 'ann', channel: 'room:1' };
    for (const { path, method, op } of operations.filter((o) => o.op.security === undefined)) {
      const concrete = path.replace(/\{([^}]+)\}/g, (_m, name: string) => sample[name] ?? 'x');
      const body = method === 'POST' ? { channel: 'room:1', user: 'ann', data: 1 } : undefined;
      await expectAnswer(method, path, 401, { path: concrete, body, key: null });
      await expectAnswer(method, path, 401, { path: concrete, body, key: 'wrong' });
      expect(op.responses['401'], op.operationId).toBeDefined();
    }
  });

  it('refusals outside the operations have the error shape: unknown path 404, wrong method 405 with Allow', async () => {
    const error = OPENAPI.components.schemas.Error;
    const unknown = await call('GET', '/api/nope');
    expect(unknown.status).toBe(404);
    expect(validate(OPENAPI, error, unknown.body)).toEqual([]);
    expect((await call('GET', '/api/nope', { key: null })).status).toBe(401);
    const wrong = await call('DELETE', '/api/openapi.json', { key: null });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
    expect(validate(OPENAPI, error, wrong.body)).toEqual([]);
    const notApi = await call('POST', '/healthz', { key: null });
    expect(notApi.status).toBe(404);
    expect(validate(OPENAPI, error, notApi.body)).toEqual([]);
  });

  it('every answer the description lists was produced and held to its schema', () => {
    const listed = operations.flatMap(({ path, method, op }) =>
      Object.keys(op.responses)
        .filter((s) => s !== 'default')
        .map((s) => `${method} ${path} ${s}`),
    );
    expect(listed.filter((l) => !seen.has(l))).toEqual([]);
  });
});
