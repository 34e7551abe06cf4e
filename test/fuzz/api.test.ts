/**
 * Hostile calls to the server API (issue 6), fuzzed with fast-check: no
 * key, wrong keys, bodies of any bytes and any shape, oversized and deeply
 * nested bodies, malformed paths and queries. The answer to each must be
 * the documented one (SPEC "Server API", docs/protocol.md), a JSON
 * `{error: {code, message}}` whose status matches its code, never a 500,
 * never a hang. The expected answers are computed from the SPEC's rules
 * here, not from the server's code.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchboardNode } from '../../src/server/node.js';
import { useNodes } from '../helpers/fixture.js';
import { nestedJson, SPEC_CHANNEL, validChannel } from './arbitraries.js';
import { send, type RawResponse } from './http.js';
import { watchProcess } from './watch.js';

const KEY = 'test-key';
const AUTH = { authorization: `Bearer ${KEY}` };
/** The key, and the content type the API requires of a body. */
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };
const SPEC_USER = /^[A-Za-z0-9_\-.:@=,]{1,250}$/;
const STATUS: Record<string, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
};

const watch = watchProcess();
afterEach(() => {
  expect(watch.problems()).toEqual([]);
});

const { node } = useNodes();
/** Bodies up to 4 KiB: the size limit is quick to reach. */
let n: SwitchboardNode;
/** Default limits (1 MiB bodies). */
let big: SwitchboardNode;
beforeAll(async () => {
  n = await node({ limits: { maxBodyBytes: 4096 } });
  big = await node({});
});

/** An error answer as documented: JSON `{error: {code, message}}`, the status of its code (405 for a wrong method). */
function expectError(res: RawResponse, code: string, status = STATUS[code]): void {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect({ status: res.status, json: res.json }).toEqual({ status, json: { error: { code, message: expect.any(String) } } });
}

// ---- what the SPEC says a body is owed ----------------------------------------

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function depth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    max = Math.max(max, d);
    for (const c of Object.values(v)) stack.push([c, d + 1]);
  }
  return max;
}

type Route = '/api/publish' | '/api/send' | '/api/broadcast' | '/api/disconnect';
const POST_ROUTES: Route[] = ['/api/publish', '/api/send', '/api/broadcast', '/api/disconnect'];

/** `ok` (200) or the error code a POST body is owed, by the SPEC and docs/protocol.md. */
function owedFor(route: Route, bytes: Uint8Array, maxBytes: number): 'ok' | 'bad_request' | 'too_large' {
  if (bytes.length > maxBytes) return 'too_large';
  let body: unknown;
  try {
    body = JSON.parse(UTF8.decode(bytes));
  } catch {
    return 'bad_request';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || depth(body) > 32) return 'bad_request';
  const b = body as Record<string, unknown>;
  const isChannel = (c: unknown) => typeof c === 'string' && SPEC_CHANNEL.test(c);
  const isUser = (u: unknown) => typeof u === 'string' && SPEC_USER.test(u);
  switch (route) {
    case '/api/publish':
      return isChannel(b.channel) && 'data' in b ? 'ok' : 'bad_request';
    case '/api/send':
      return isUser(b.user) && 'data' in b ? 'ok' : 'bad_request';
    case '/api/broadcast': {
      const cs = b.channels;
      return Array.isArray(cs) && cs.length >= 1 && cs.length <= 1000 && cs.every(isChannel) && 'data' in b ? 'ok' : 'bad_request';
    }
    case '/api/disconnect': {
      const code = b.code ?? 4000;
      const reason = b.reason ?? '';
      const codeOk = typeof code === 'number' && Number.isInteger(code) && code >= 4000 && code <= 4199;
      const reasonOk = typeof reason === 'string' && Buffer.byteLength(reason) <= 120;
      return isUser(b.user) && codeOk && reasonOk ? 'ok' : 'bad_request';
    }
  }
}

/** The shape of a 200 answer to each POST route. */
function expectOk(route: Route, bytes: Uint8Array, res: RawResponse): void {
  expect(res.status, res.text).toBe(200);
  const position = { offset: expect.any(Number), epoch: expect.any(String) };
  const body = JSON.parse(UTF8.decode(bytes)) as Record<string, unknown>;
  switch (route) {
    case '/api/publish':
    case '/api/send':
      return expect(res.json).toEqual(position);
    case '/api/broadcast':
      return expect(res.json).toEqual({ results: (body.channels as unknown[]).map(() => position) });
    case '/api/disconnect':
      return expect(res.json).toEqual({ sessions: 0 });
  }
}

// ---- generators -----------------------------------------------------------------

const enc = (s: string) => new TextEncoder().encode(s);
const notAString = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }), fc.object({ maxDepth: 1 }));
const anyChannel = fc.oneof(validChannel, fc.string({ maxLength: 20 }), fc.constant('x'.repeat(256)), fc.constant(''), notAString);
const anyUser = fc.oneof(validChannel, fc.string({ maxLength: 20 }), fc.constant('u'.repeat(251)), notAString);

/** A body shaped like a real call, each field missing, valid, or of the wrong type. */
const callLike = fc.record(
  {
    channel: anyChannel,
    user: anyUser,
    data: fc.jsonValue({ maxDepth: 3 }),
    channels: fc.oneof(fc.array(anyChannel, { maxLength: 5 }), fc.array(validChannel, { minLength: 1, maxLength: 5 }), fc.constant([]), notAString),
    code: fc.oneof(fc.integer({ min: 3990, max: 4210 }), fc.constantFrom(4000.5, '4001', null, -1), notAString),
    reason: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('é'.repeat(61)), notAString),
  },
  { requiredKeys: [] },
);

/** Bytes that are not UTF-8, spliced into a body that would be valid otherwise. */
const withInvalidUtf8 = fc
  .tuple(validChannel, fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80]))
  .map(([channel, bad]) => {
    const [head, tail] = [enc(`{"channel":"${channel}","user":"${channel}","channels":["${channel}"],"data":"`), enc('"}')];
    return Uint8Array.from([...head, ...bad, ...tail]);
  });

const anyBody: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: callLike.map((b) => enc(JSON.stringify(b))) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }).map(enc) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => enc(JSON.stringify(v))) },
  { weight: 1, arbitrary: withInvalidUtf8 },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 28, max: 40 }), validChannel).map(([d, c]) => enc(`{"channel":"${c}","user":"${c}","channels":["${c}"],"data":${nestedJson(d)}}`)),
  },
  { weight: 1, arbitrary: fc.constantFrom(enc(''), enc('{'), enc('\ufeff{"channel":"a","data":1}'), enc('{"channel":"a","data":1}{}'), enc('{"__proto__":{"channel":"a"},"data":1}')) },
);

/** Header values a client can send (visible ASCII and spaces). */
const headerText = fc.string({ unit: fc.constantFrom(...' !#$%&*+-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz|~'), maxLength: 40 });

/** HTTP drops the spaces around a header value: those are the same key. */
const isTheKey = (h: string) => /^bearer test-key$/i.test(h.trim());
const wrongAuth = fc.oneof(
  fc.constant(undefined),
  headerText.filter((h) => !isTheKey(h)),
  headerText.map((k) => `Bearer ${k}`).filter((h) => !isTheKey(h)),
  fc.constantFrom('Bearer', 'Bearer ', `Bearer  ${KEY}`, `Bearer ${KEY}x`, `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}`, `Bearer ${KEY.toUpperCase()}`, `${KEY}`, `Token ${KEY}`),
);

const KEYED_ROUTES: Array<[string, string]> = [
  ...POST_ROUTES.map((p): [string, string] => ['POST', p]),
  ['GET', '/api/users/alice'],
  ['GET', '/api/presence/room'],
  ['GET', '/api/history/room?since=0&limit=5'],
  ['GET', '/api/nodes'],
];

// ---- properties ---------------------------------------------------------------------

describe('the server API, fuzzed', () => {
  it('refuses every keyed route with 401 unauthorized without the key or with a wrong one, whatever the body', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...KEYED_ROUTES), wrongAuth, anyBody, async ([method, path], auth, body) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (auth !== undefined) headers.authorization = auth;
        const res = await send(n.port, { method, path, headers, ...(method === 'POST' ? { body } : {}) });
        expectError(res, 'unauthorized');
      }),
      { numRuns: 300 },
    );
  });

  it('answers any POST body with what the SPEC owes it: 200, 400 bad_request or 413 too_large', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POST_ROUTES), anyBody, fc.boolean(), async (route, body, chunked) => {
        const res = await send(n.port, { method: 'POST', path: route, headers: { ...AUTH, 'content-type': 'application/json' }, body, ...(chunked ? { chunked: 7 } : {}) });
        const want = owedFor(route, body, 4096);
        if (want === 'ok') expectOk(route, body, res);
        else expectError(res, want);
      }),
      { numRuns: 1000 },
    );
  });

  it('answers bodies over --max-body-bytes with 413 too_large, with or without Content-Length, and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POST_ROUTES), fc.integer({ min: 4097, max: 4 * 4096 }), fc.boolean(), async (route, size, chunked) => {
        const head = '{"channel":"a","user":"a","channels":["a"],"data":"';
        const body = enc(head + 'x'.repeat(size - head.length - 2) + '"}');
        expect(body.length).toBe(size);
        const res = await send(n.port, { method: 'POST', path: route, headers: JSON_AUTH, body, ...(chunked ? { chunked: 1000 } : {}) });
        expectError(res, 'too_large');
      }),
      { numRuns: 60, examples: [['/api/publish', 4097, false], ['/api/publish', 4097, true]] },
    );
    // At the limit exactly: accepted.
    const head = '{"channel":"a","data":"';
    const exact = enc(head + 'x'.repeat(4096 - head.length - 2) + '"}');
    expect((await send(n.port, { method: 'POST', path: '/api/publish', headers: JSON_AUTH, body: exact })).status).toBe(200);
    // The default limit, 1 MiB, with a 3 MiB body sent in full.
    const huge = enc(JSON.stringify({ channel: 'a', data: 'x'.repeat(3 * 1024 * 1024) }));
    expectError(await send(big.port, { method: 'POST', path: '/api/publish', headers: JSON_AUTH, body: huge }), 'too_large');
    expectError(await send(big.port, { method: 'POST', path: '/api/publish', headers: JSON_AUTH, body: huge, chunked: 64 * 1024 }), 'too_large');
    expect((await send(big.port, { method: 'POST', path: '/api/publish', headers: JSON_AUTH, body: enc('{"channel":"a","data":1}') })).status).toBe(200);
  });

  it('refuses bodies nested deeper than 32 levels, up to 10^5 levels, with 400 bad_request and stores nothing', async () => {
    for (const route of POST_ROUTES) {
      for (const [d, kind] of [[100_000, 'array'], [100_000, 'object'], [32, 'array'], [1000, 'mixed']] as const) {
        const body = enc(`{"channel":"deep","user":"deep","channels":["deep"],"data":${nestedJson(d, kind)}}`);
        expectError(await send(big.port, { method: 'POST', path: route, headers: JSON_AUTH, body }), 'bad_request');
      }
    }
    // At the limit: the body is level 1, so `data` may nest 31 levels.
    const atLimit = enc(`{"channel":"deep","data":${nestedJson(31)}}`);
    expect((await send(big.port, { method: 'POST', path: '/api/publish', headers: JSON_AUTH, body: atLimit })).status).toBe(200);
    const history = await send(big.port, { method: 'GET', path: '/api/history/deep', headers: AUTH });
    expect(history.status).toBe(200);
    expect((history.json as { messages: unknown[] }).messages).toHaveLength(1);
  });

  it('answers GET routes with any path parameter or query with 200, 400 or the documented 404, never 500', async () => {
    const segment = fc.oneof(
      validChannel.map((s) => ({ raw: encodeURIComponent(s), decoded: s as string | null })),
      fc.string({ maxLength: 20 }).filter((s) => s.length > 0).map((s) => ({ raw: encodeURIComponent(s), decoded: s as string | null })),
      fc.constantFrom('%', '%Z', '%ZZ', '%C0%80', '%E0%A4%A', '%ED%A0%80', '%FF', 'a%2', '%%41').map((raw) => ({ raw, decoded: null })),
    );
    const param = fc.oneof(
      fc.nat().map(String),
      fc.constantFrom('', '-1', '1.5', 'abc', '1e400', '1e3', '0x10', '%201', '9007199254740991', '9007199254740993', '00000000000000000001', '%ZZ'),
      fc.string({ maxLength: 5 }).map(encodeURIComponent),
    );
    // "A non-negative integer": decimal digits only (no spaces, `0x10` or `1e3`), at most 2^53 - 1; empty means "not given".
    const isCount = (v: string) => v === '' || (/^\d+$/.test(v) && Number.isSafeInteger(Number(v)));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('users', 'presence', 'history'), segment, param, param, async (kind, seg, since, limit) => {
        const query = kind === 'history' ? `?since=${since}&limit=${limit}` : '';
        const res = await send(n.port, { method: 'GET', path: `/api/${kind}/${seg.raw}${query}`, headers: AUTH });
        expect(res.status).not.toBe(500);
        // `.` and `..` are path steps, resolved before routing: the path becomes another one.
        if (seg.decoded === '.' || seg.decoded === '..') return expectError(res, 'not_found');
        const valid = seg.decoded !== null && (kind === 'users' ? SPEC_USER : SPEC_CHANNEL).test(seg.decoded);
        const decode = (v: string) => { try { return decodeURIComponent(v); } catch { return v; } };
        const queryOk = kind !== 'history' || (isCount(decode(since)) && isCount(decode(limit)));
        if (!valid || !queryOk) return expectError(res, 'bad_request');
        expect(res.status, res.text).toBe(200);
        if (kind === 'users') expect(res.json).toEqual({ online: false, sessions: [] });
        if (kind === 'presence') expect(res.json).toEqual({ members: [] });
        if (kind === 'history') expect(res.json).toMatchObject({ offset: expect.any(Number), epoch: expect.any(String), messages: expect.any(Array) });
      }),
      { numRuns: 400 },
    );
  });

  it('answers unknown paths with 404 not_found and wrong methods with 405 bad_request, with or without a key', async () => {
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS');
    await fc.assert(
      fc.asyncProperty(method, fc.constantFrom(...KEYED_ROUTES), fc.boolean(), async (m, [right, path], keyed) => {
        const res = await send(n.port, { method: m, path, headers: keyed ? AUTH : {} });
        if (!keyed) {
          expectError(res, 'unauthorized');
        } else if (m === right) {
          expect(res.status).not.toBe(500);
        } else {
          expectError(res, 'bad_request', 405);
          expect(res.headers.allow).toBe(right);
        }
      }),
      { numRuns: 150 },
    );
    const tail = fc.string({ unit: fc.constantFrom(...'abcxyz019-_.~%'), minLength: 1, maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(tail, method, async (t, m) => {
        const path = `/api/zz${t}`;
        const res = await send(n.port, { method: m, path, headers: AUTH });
        expectError(res, 'not_found');
      }),
      { numRuns: 100 },
    );
  });

  it('answers a malformed request target with 400 bad_request, for the API and for an upgrade', async () => {
    for (const target of ['http://[/api/nodes', '//[/x', 'http://a:99999/ws', 'http://[::1/ws']) {
      for (const upgrade of [false, true]) {
        const head = upgrade
          ? 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
          : '';
        const reply = await rawHttp(n.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}Authorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`);
        expect(reply.split('\r\n')[0], `${target} upgrade=${upgrade}`).toMatch(/^HTTP\/1\.1 400 /);
        expect(reply).toContain('"bad_request"');
      }
    }
  });

  it('keeps the API closed on a node with no --api-key that is not --insecure', async () => {
    const closed = await node({ insecure: false, apiKeys: [] });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...KEYED_ROUTES), fc.oneof(wrongAuth, fc.constant(`Bearer ${KEY}`)), async ([method, path], auth) => {
        const res = await send(closed.port, { method, path, headers: auth === undefined ? {} : { authorization: auth }, ...(method === 'POST' ? { body: enc('{"channel":"a","user":"a","data":1}') } : {}) });
        expectError(res, 'unauthorized');
      }),
      { numRuns: 50 },
    );
  });

  it('never answered internal', async () => {
    for (const x of [n, big]) {
      const metrics = (await send(x.port, { method: 'GET', path: '/metrics' })).text;
      expect(metrics).toMatch(/switchboard_errors_total\{[^}]*code="bad_request"[^}]*\} [1-9]/);
      expect(metrics).not.toMatch(/switchboard_errors_total\{[^}]*code="internal"/);
    }
  });
});

/** Sends `text` as is on a fresh socket; resolves with everything the server wrote before closing (bounded). */
function rawHttp(port: number, text: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(got.slice(0, 200))}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => (got += c.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.write(text);
  });
}
