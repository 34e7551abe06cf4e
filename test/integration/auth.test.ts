/**
 * Tokens are checked before the upgrade: a refused token never gets a
 * WebSocket. Private namespaces need the token's `channels` claim.
 */
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import type { NodeOptionsInput } from '../../src/server/options.js';
import { api } from '../helpers/api.js';
import { RawClient } from '../helpers/raw-client.js';

const SECRET = 'a-test-secret-of-decent-length';
const nodes: SwitchboardNode[] = [];
const clients: RawClient[] = [];

async function node(opts: NodeOptionsInput): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', ...opts });
  nodes.push(n);
  return n;
}

function hs256(claims: Record<string, unknown>, secret = SECRET, exp: string | number = '1h'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

async function connect(n: SwitchboardNode, query: string, headers?: Record<string, string>): Promise<RawClient> {
  const c = await RawClient.connect(`ws://127.0.0.1:${n.port}/ws?${query}`, headers ? { headers } : {});
  clients.push(c);
  return c;
}

function refusal(n: SwitchboardNode, query: string): Promise<unknown> {
  return RawClient.open(`ws://127.0.0.1:${n.port}/ws?${query}`).then(
    (c) => {
      clients.push(c);
      throw new Error('the upgrade was accepted');
    },
    (err: unknown) => err,
  );
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.close()));
});

describe('HS256 with --secret', () => {
  it('accepts a valid token in the query or the Authorization header', async () => {
    const n = await node({ secret: SECRET });
    const q = await connect(n, `token=${await hs256({ sub: 'alice' })}`);
    expect(q.welcome.user).toBe('alice');
    const h = await connect(n, '', { authorization: `Bearer ${await hs256({ sub: 'bob' })}` });
    expect(h.welcome.user).toBe('bob');
  });

  // Without any token the upgrade is accepted and the token must come in the first frame (connect-frame.test.ts).
  it('refuses with 401 before the upgrade: wrong key, expired, tampered, alg none, insecure ?user', async () => {
    const n = await node({ secret: SECRET });
    const valid = await hs256({ sub: 'alice' });
    const [h, p] = valid.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'mallory' })).toString('base64url')}.${valid.split('.')[2]}`;
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'mallory' })).toString('base64url')}.`;
    const cases: Record<string, string> = {
      'insecure user param': 'user=alice',
      'wrong key': `token=${await hs256({ sub: 'alice' }, 'another-secret')}`,
      expired: `token=${await hs256({ sub: 'alice' }, SECRET, Math.floor(Date.now() / 1000) - 60)}`,
      tampered: `token=${tampered}`,
      'alg none': `token=${none}`,
      garbage: 'token=not.a.jwt',
      'no sub': `token=${await hs256({})}`,
    };
    for (const [name, query] of Object.entries(cases)) {
      const err = (await refusal(n, query)) as { status?: number; body?: string };
      expect(err.status, name).toBe(401);
      expect(JSON.parse(err.body ?? '{}'), name).toMatchObject({ error: { code: 'unauthorized' } });
    }
    const expired = (await refusal(n, cases.expired ?? '')) as { body: string };
    expect(expired.body).toContain('expired');
  });
});

describe('RS256 and ES256 with --public-key', () => {
  for (const alg of ['RS256', 'ES256'] as const) {
    it(`accepts ${alg} tokens signed by the matching private key, and refuses others`, async () => {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
      const other = await generateKeyPair(alg);
      const n = await node({ publicKey: await exportSPKI(publicKey) });
      const sign = (key: Parameters<SignJWT['sign']>[0]) =>
        new SignJWT({ sub: 'carol' }).setProtectedHeader({ alg }).setExpirationTime('5m').sign(key);
      const c = await connect(n, `token=${await sign(privateKey)}`);
      expect(c.welcome.user).toBe('carol');
      expect(await refusal(n, `token=${await sign(other.privateKey)}`)).toMatchObject({ status: 401 });
      // An HS256 token is not accepted by a node configured only with a public key.
      expect(await refusal(n, `token=${await hs256({ sub: 'carol' })}`)).toMatchObject({ status: 401 });
    });
  }
});

describe('private namespaces', () => {
  it('needs a matching pattern in the channels claim to subscribe or publish', async () => {
    const n = await node({
      secret: SECRET,
      namespaces: { team: { historySize: 10, historyTtl: 60, presence: true, publish: true, private: true } },
    });
    const member = await connect(n, `token=${await hs256({ sub: 'dora', channels: ['team:blue*'] })}`);
    const outsider = await connect(n, `token=${await hs256({ sub: 'eve' })}`);
    expect(await member.request({ type: 'subscribe', channel: 'team:blue-1' })).toHaveProperty('result');
    expect(await member.request({ type: 'subscribe', channel: 'team:red' })).toMatchObject({ error: { code: 'forbidden' } });
    expect(await outsider.request({ type: 'subscribe', channel: 'team:blue-1' })).toMatchObject({ error: { code: 'forbidden' } });
    expect(await outsider.request({ type: 'publish', channel: 'team:blue-1', data: 1 })).toMatchObject({ error: { code: 'forbidden' } });
    // Nobody subscribes to another user's personal channel.
    expect(await member.request({ type: 'subscribe', channel: 'user:eve' })).toMatchObject({ error: { code: 'forbidden' } });
  });

  it('gives history only to those who may subscribe: never without a grant, whatever since says', async () => {
    const n = await node({
      secret: SECRET,
      apiKeys: ['test-key'],
      namespaces: { vault: { historySize: 10, historyTtl: 60, presence: false, private: true } },
    });
    for (const data of ['one', 'two']) expect((await api(n.url(), 'POST', '/api/publish', { channel: 'vault:x', data })).status).toBe(200);
    const { epoch } = (await api(n.url(), 'GET', '/api/history/vault:x')).body as { epoch: string };
    const outsider = await connect(n, `token=${await hs256({ sub: 'ned' })}`);
    for (const since of [{ offset: 0, epoch }, { offset: 0, epoch: 'any' }, { offset: 1, epoch }]) {
      const refused = await outsider.request({ type: 'subscribe', channel: 'vault:x', since });
      expect(refused).toMatchObject({ error: { code: 'forbidden' } });
      expect(refused).not.toHaveProperty('result');
    }
    expect(outsider.messages('vault:x')).toEqual([]);
    // Nor another user's personal channel's, whatever since says.
    await api(n.url(), 'POST', '/api/send', { user: 'oda', data: 'private' });
    expect(await outsider.request({ type: 'subscribe', channel: 'user:oda', since: { offset: 0, epoch: 'any' } })).toMatchObject({ error: { code: 'forbidden' } });
    const member = await connect(n, `token=${await hs256({ sub: 'ola', channels: ['vault:*'] })}`);
    const granted = await member.request({ type: 'subscribe', channel: 'vault:x', since: { offset: 0, epoch } });
    expect(granted).toMatchObject({ result: { recovered: true, messages: [{ data: 'one' }, { data: 'two' }] } });
  });

  it('refuses client publishes to a namespace with publish: false, while the channel stays subscribable', async () => {
    const n = await node({
      insecure: true,
      namespaces: { announce: { historySize: 10, historyTtl: 60, presence: false, publish: false, private: false } },
    });
    const c = await connect(n, 'user=fay');
    expect(await c.request({ type: 'subscribe', channel: 'announce:all' })).toHaveProperty('result');
    expect(await c.request({ type: 'publish', channel: 'announce:all', data: 1 })).toMatchObject({ error: { code: 'forbidden' } });
  });
});

describe('secure defaults (SPEC "Running it")', () => {
  it('outside --insecure, refuses client publish and send unless the namespace allows it; subscribing stays open', async () => {
    const n = await node({ secret: SECRET });
    const c = await connect(n, `token=${await hs256({ sub: 'gus' })}`);
    expect(await c.request({ type: 'subscribe', channel: 'room:1' })).toHaveProperty('result');
    expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).toMatchObject({ error: { code: 'forbidden' } });
    expect(await c.request({ type: 'publish', channel: 'plain', data: 1 })).toMatchObject({ error: { code: 'forbidden' } });
    const sent = await c.request({ type: 'send', user: 'hal', data: 1 });
    expect(sent).toMatchObject({ error: { code: 'forbidden', message: expect.stringContaining('send') } });
  });

  it('allows client publish where a namespace says publish: true, and send where the user namespace does', async () => {
    const n = await node({
      secret: SECRET,
      namespaces: {
        room: { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false },
        user: { historySize: 10, historyTtl: 60, presence: false, publish: true, private: false },
      },
    });
    const c = await connect(n, `token=${await hs256({ sub: 'ida' })}`);
    const to = await connect(n, `token=${await hs256({ sub: 'jon' })}`);
    expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).toMatchObject({ result: { offset: 1 } });
    expect(await c.request({ type: 'publish', channel: 'other:1', data: 1 })).toMatchObject({ error: { code: 'forbidden' } });
    expect(await c.request({ type: 'send', user: 'jon', data: 'psst' })).toHaveProperty('result');
    expect(await to.next((f) => f.type === 'message')).toMatchObject({ channel: 'user:jon', data: 'psst', from: 'ida' });
  });

  it('under --insecure, clients may publish and send where no namespace says otherwise', async () => {
    const n = await node({ insecure: true });
    const c = await connect(n, 'user=kim');
    expect(await c.request({ type: 'publish', channel: 'room:1', data: 1 })).toHaveProperty('result');
    expect(await c.request({ type: 'send', user: 'lee', data: 1 })).toHaveProperty('result');
  });
});

describe('JWT policy (--jwt-audience, --jwt-issuer, --jwt-max-lifetime, --jwt-clock-skew)', () => {
  const key = new TextEncoder().encode(SECRET);
  const now = (): number => Math.floor(Date.now() / 1000);
  const raw = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key);

  it('refuses with 401 before the upgrade: no exp, wrong aud, wrong iss, too long a lifetime, iat in the future', async () => {
    const n = await node({ secret: SECRET, jwtAudience: 'switchboard', jwtIssuer: 'https://auth.example', jwtMaxLifetime: 3600 });
    const claims = { sub: 'mia', aud: 'switchboard', iss: 'https://auth.example' };
    const good = await raw({ ...claims, iat: now(), exp: now() + 600 });
    expect((await connect(n, `token=${good}`)).welcome.user).toBe('mia');
    const cases: Record<string, [string, RegExp]> = {
      'no exp': [await raw({ ...claims, iat: now() }), /"exp"/],
      'wrong aud': [await raw({ ...claims, aud: 'other', exp: now() + 600 }), /"aud"/],
      'no aud': [await raw({ sub: 'mia', iss: 'https://auth.example', exp: now() + 600 }), /"aud"/],
      'wrong iss': [await raw({ ...claims, iss: 'https://evil.example', exp: now() + 600 }), /"iss"/],
      'too long': [await raw({ ...claims, iat: now(), exp: now() + 7200 }), /longer/],
      'too long without iat': [await raw({ ...claims, exp: now() + 7200 }), /longer/],
      'iat in the future': [await raw({ ...claims, iat: now() + 600, exp: now() + 1200 }), /iat/],
    };
    for (const [name, [token, message]] of Object.entries(cases)) {
      const err = (await refusal(n, `token=${token}`)) as { status?: number; body?: string };
      expect(err.status, name).toBe(401);
      expect(JSON.parse(err.body ?? '{}'), name).toMatchObject({ error: { code: 'unauthorized', message: expect.stringMatching(message) } });
    }
  });
});
