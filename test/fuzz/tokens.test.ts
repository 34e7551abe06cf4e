/**
 * Hostile tokens at the upgrade (issue 6), fuzzed with fast-check: forged
 * signatures, wrong secrets, expired or not-yet-valid tokens, `alg: none`,
 * missing or invalid `sub`, garbage, algorithm confusion, embedded keys,
 * huge tokens. Each is refused with HTTP 401 and a JSON error before any
 * WebSocket exists, in the query or in the Authorization header alike.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import fc from 'fast-check';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchboardNode } from '../../src/server/node.js';
import { useNodes } from '../helpers/fixture.js';
import { watchProcess } from './watch.js';

const SECRET = 'the-fuzz-secret-of-decent-length';
const secretKey = new TextEncoder().encode(SECRET);

const watch = watchProcess();
afterEach(() => {
  expect(watch.problems()).toEqual([]);
});

interface Upgrade {
  status: number;
  body: string;
}

/** Ask for a WebSocket upgrade with `token` in the query or the header; the HTTP answer, or 101. */
function upgrade(port: number, token: string, where: 'query' | 'header'): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const path = where === 'query' ? `/ws?token=${encodeURIComponent(token)}` : '/ws';
    const headers: Record<string, string> = {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
    };
    if (where === 'header') headers.authorization = `Bearer ${token}`;
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no answer to the upgrade within 5 s'));
    }, 5000);
    req.on('upgrade', (_res, socket) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: 101, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

function expectUnauthorized(res: Upgrade): void {
  expect(res.status, res.body).toBe(401);
  expect(JSON.parse(res.body)).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function hs256(claims: Record<string, unknown>, key: Uint8Array = secretKey, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', ...header }).sign(key);
}

const validSub = fc.stringMatching(/^[A-Za-z0-9_\-.:@=,]{1,40}$/);
const where = fc.constantFrom<'query' | 'header'>('query', 'header');

const { node } = useNodes();
let hsNode: SwitchboardNode;
let rsNode: SwitchboardNode;
let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
let attacker: { publicKey: CryptoKey; privateKey: CryptoKey };
let rsaPem: string;

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  attacker = await generateKeyPair('RS256', { extractable: true });
  rsaPem = await exportSPKI(rsa.publicKey);
  const opts = { insecure: false, limits: { maxConnectionsPerIpPerSecond: 0 } };
  hsNode = await node({ ...opts, secret: SECRET });
  rsNode = await node({ ...opts, publicKey: rsaPem });
});

describe('tokens at the upgrade, fuzzed', () => {
  it('accepts a valid token in either place (so a refusal below means something)', async () => {
    await fc.assert(
      fc.asyncProperty(validSub, where, async (sub, w) => {
        expect((await upgrade(hsNode.port, await hs256({ sub, exp: now() + 60 }), w)).status).toBe(101);
        const rs = await new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('1m').sign(rsa.privateKey);
        expect((await upgrade(rsNode.port, rs, w)).status).toBe(101);
      }),
      { numRuns: 10 },
    );
  });

  it('refuses garbage of any shape with 401', async () => {
    const segment = fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }).map(b64));
    const garbage = fc.oneof(
      fc.string({ minLength: 1, maxLength: 200 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }),
      fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
    );
    await fc.assert(
      fc.asyncProperty(garbage.filter((g) => g.trim().length > 0), where, fc.constantFrom('hs', 'rs'), async (token, w, which) => {
        const port = which === 'hs' ? hsNode.port : rsNode.port;
        // Header values cannot hold control characters or non-Latin-1: such tokens can only come in the query.
        const place = /^[\x20-\x7e]+$/.test(token) ? w : 'query';
        expectUnauthorized(await upgrade(port, token, place));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses forged signatures, tampered claims and wrong secrets with 401', async () => {
    const attack = fc.oneof(
      // A valid header and payload with a signature of random bytes.
      fc.tuple(validSub, fc.uint8Array({ minLength: 0, maxLength: 64 })).map(async ([sub, sig]) => {
        const [h, p] = (await hs256({ sub })).split('.');
        return `${h}.${p}.${Buffer.from(sig).toString('base64url')}`;
      }),
      // A genuine signature over other claims.
      fc.tuple(validSub, validSub).filter(([a, b]) => a !== b).map(async ([sub, other]) => {
        const [h, , s] = (await hs256({ sub })).split('.');
        return `${h}.${b64({ sub: other })}.${s}`;
      }),
      // Signed with another secret.
      fc.tuple(validSub, fc.uint8Array({ minLength: 1, maxLength: 64 })).filter(([, k]) => Buffer.from(k).toString() !== SECRET).map(([sub, key]) => hs256({ sub }, key)),
    );
    await fc.assert(
      fc.asyncProperty(attack, where, async (token, w) => expectUnauthorized(await upgrade(hsNode.port, await token, w))),
      { numRuns: 150 },
    );
  });

  it('refuses expired and not-yet-valid tokens with 401', async () => {
    const claims = fc.oneof(
      // Past the 30 s of clock skew the node tolerates.
      fc.integer({ min: 0, max: 10 * 365 * 86400 }).map((ago) => ({ exp: now() - 31 - ago })),
      fc.integer({ min: 60, max: 10 * 365 * 86400 }).map((ahead) => ({ nbf: now() + ahead })),
      fc.constantFrom<Record<string, unknown>>({ exp: 'tomorrow' }, { exp: -1 }, { exp: 0 }, { nbf: 'now' }, { exp: null }),
    );
    await fc.assert(
      fc.asyncProperty(validSub, claims, where, async (sub, extra, w) => expectUnauthorized(await upgrade(hsNode.port, await hs256({ sub, ...extra }), w))),
      { numRuns: 100 },
    );
  });

  it('refuses alg none in any spelling, signed or not, on either kind of node', async () => {
    const alg = fc.constantFrom('none', 'None', 'NONE', 'nOnE', '', 'HS256 ', 'hs256');
    const signature = fc.oneof(fc.constant(''), fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url')));
    await fc.assert(
      fc.asyncProperty(validSub, alg, signature, fc.constantFrom('hs', 'rs'), where, async (sub, a, sig, which, w) => {
        const token = `${b64({ alg: a, typ: 'JWT' })}.${b64({ sub, exp: now() + 60 })}.${sig}`;
        expectUnauthorized(await upgrade(which === 'hs' ? hsNode.port : rsNode.port, token, w));
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a missing, empty or invalid sub and a channels claim that is not an array of strings', async () => {
    const claims = fc.oneof(
      fc.constant<Record<string, unknown>>({}),
      fc.oneof(fc.constantFrom('', 'a b', 'x'.repeat(251), 'é', 'a/b'), fc.integer(), fc.constant(null), fc.array(validSub)).map((sub) => ({ sub })),
      fc.tuple(validSub, fc.oneof(fc.string(), fc.integer(), fc.array(fc.integer(), { minLength: 1 }), fc.constant({ a: 1 }))).map(([sub, channels]) => ({ sub, channels })),
    );
    await fc.assert(
      fc.asyncProperty(claims, where, async (c, w) => expectUnauthorized(await upgrade(hsNode.port, await hs256(c), w))),
      { numRuns: 100 },
    );
  });

  it('refuses algorithm confusion: RS256 on an HS256 node, HS256 keyed with the public key, an embedded attacker key', async () => {
    await fc.assert(
      fc.asyncProperty(validSub, where, async (sub, w) => {
        const rs = await new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
        expectUnauthorized(await upgrade(hsNode.port, rs, w));
        const confused = await hs256({ sub }, new TextEncoder().encode(rsaPem));
        expectUnauthorized(await upgrade(rsNode.port, confused, w));
        const jwk = await exportJWK(attacker.publicKey);
        const embedded = await new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256', jwk }).sign(attacker.privateKey);
        expectUnauthorized(await upgrade(rsNode.port, embedded, w));
        const byAttacker = await new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256' }).sign(attacker.privateKey);
        expectUnauthorized(await upgrade(rsNode.port, byAttacker, w));
      }),
      { numRuns: 10 },
    );
  });

  it('refuses huge tokens: 401 while the request fits in 16 KiB of headers, then 431 from the HTTP layer', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1000, max: 15_000 }), where, async (size, w) => {
        const [h, p, s] = (await hs256({ sub: 'big' })).split('.');
        const token = `${h}.${p}${'A'.repeat(size)}.${s}`;
        expectUnauthorized(await upgrade(hsNode.port, token, w));
      }),
      { numRuns: 20 },
    );
    for (const size of [17_000, 100_000, 1_000_000]) {
      for (const w of ['query', 'header'] as const) {
        const res = await upgrade(hsNode.port, 'x'.repeat(size), w).catch((err: unknown) => ({ status: -1, body: String(err) }));
        expect(res.status, res.body).toBe(431);
      }
    }
    // The node is none the worse.
    expect((await upgrade(hsNode.port, await hs256({ sub: 'after', exp: now() + 60 }), 'header')).status).toBe(101);
  });
});
