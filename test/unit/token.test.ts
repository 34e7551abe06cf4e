import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, exportSPKI, generateKeyPair, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenError, TokenVerifier } from '../../src/server/auth/token.js';

const SECRET = 'a-long-enough-test-secret-for-hs256!!';
const enc = new TextEncoder();
const nowSec = (): number => Math.floor(Date.now() / 1000);
const b64url = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function hs256(payload: JWTPayload, secret: string | Uint8Array = SECRET): Promise<string> {
  const key = typeof secret === 'string' ? enc.encode(secret) : secret;
  // `exp` is required (SPEC): tokens of tests about other claims get one.
  return new SignJWT({ exp: nowSec() + 600, ...payload }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
}

async function expectRefused(v: TokenVerifier, token: string, msg?: RegExp): Promise<TokenError> {
  const err = await v.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenError);
  if (msg) expect((err as Error).message).toMatch(msg);
  return err as TokenError;
}

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let rsa: { privateKey: PrivateKey; pem: string };
let ec: { privateKey: PrivateKey; pem: string };

beforeAll(async () => {
  const r = await generateKeyPair('RS256', { extractable: true });
  rsa = { privateKey: r.privateKey, pem: await exportSPKI(r.publicKey) };
  const e = await generateKeyPair('ES256', { extractable: true });
  ec = { privateKey: e.privateKey, pem: await exportSPKI(e.publicKey) };
});

describe('TokenVerifier: HS256', () => {
  it('accepts a valid HS256 token and returns the identity', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    expect(v.configured).toBe(true);
    const exp = nowSec() + 600;
    const id = await v.verify(await hs256({ sub: 'alice', exp, channels: ['chat:*', 'team:42'] }));
    expect(id).toEqual({ user: 'alice', channels: ['chat:*', 'team:42'], exp });
  });

  it('a token without channels gives empty channels; one without exp is refused (SPEC: exp required)', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    const exp = nowSec() + 600;
    expect(await v.verify(await hs256({ sub: 'bob', exp }))).toEqual({ user: 'bob', channels: [], exp });
    const noExp = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).sign(enc.encode(SECRET));
    await expectRefused(v, noExp, /"exp".*required/);
  });

  it('accepts an empty channels array', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    expect((await v.verify(await hs256({ sub: 'bob', channels: [] }))).channels).toEqual([]);
  });

  it('refuses an expired token with a message about expiry', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    const err = await expectRefused(v, await hs256({ sub: 'alice', exp: nowSec() - 3600 }), /expired/);
    expect(err.name).toBe('TokenError');
  });

  it('refuses a token that is not yet valid (nbf in the future)', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    await expectRefused(v, await hs256({ sub: 'alice', nbf: nowSec() + 3600 }), /nbf/);
  });

  it('refuses a token signed with another secret', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    await expectRefused(v, await hs256({ sub: 'alice' }, 'another-secret-of-decent-length-0000'), /signature/);
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    const [h, , s] = (await hs256({ sub: 'alice', channels: [] })).split('.');
    const forged = `${h}.${b64url({ sub: 'admin', channels: ['*'] })}.${s}`;
    await expectRefused(v, forged, /signature/);
  });

  it('refuses alg "none" (unsigned) tokens', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: nowSec() + 600 })}.`;
    await expectRefused(v, none, /algorithm/);
    // with a bogus signature too
    await expectRefused(v, `${none}AAAA`, /algorithm/);
    // and with the header's alg in another case
    await expectRefused(v, `${b64url({ alg: 'None', typ: 'JWT' })}.${b64url({ sub: 'alice' })}.`, /algorithm/);
  });

  it('refuses garbage', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    for (const t of ['', 'abc', 'a.b.c', 'a.b', '...', `${b64url('{')}.${b64url({ sub: 'a' })}.x`]) {
      await expectRefused(v, t, /malformed|invalid|algorithm/);
    }
  });

  it('refuses a token without sub', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    await expectRefused(v, await hs256({ channels: [] }), /sub/);
  });

  it('refuses a sub that is not a valid user id', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    for (const sub of ['', 'a b', 'a/b', 'u'.repeat(251)]) {
      await expectRefused(v, await hs256({ sub }), /sub/);
    }
    // a non-string sub is refused (by jose's claim check or ours)
    const t = await new SignJWT({ sub: 42 } as unknown as JWTPayload).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(enc.encode(SECRET));
    await expectRefused(v, t);
  });

  it('refuses channels that are not an array of strings', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    for (const channels of ['chat:*', ['chat:*', 5], [null], { 0: 'a' }, 7, null]) {
      await expectRefused(v, await hs256({ sub: 'alice', channels } as JWTPayload), /channels/);
    }
  });

  it('refuses an RS256 token when only a secret is configured', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    const t = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(rsa.privateKey);
    await expectRefused(v, t, /algorithm/);
  });
});

describe('TokenVerifier: public keys', () => {
  it('accepts RS256 with an RSA public key', async () => {
    const v = new TokenVerifier({ publicKey: rsa.pem });
    expect(v.configured).toBe(true);
    const t = await new SignJWT({ sub: 'carol', channels: ['a:*'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('10m')
      .sign(rsa.privateKey);
    const id = await v.verify(t);
    expect(id.user).toBe('carol');
    expect(id.channels).toEqual(['a:*']);
    expect(typeof id.exp).toBe('number');
  });

  it('accepts ES256 with a P-256 public key', async () => {
    const v = new TokenVerifier({ publicKey: ec.pem });
    const t = await new SignJWT({ sub: 'dave', channels: ['x'] }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('10m').sign(ec.privateKey);
    expect(await v.verify(t)).toEqual({ user: 'dave', channels: ['x'], exp: expect.any(Number) });
  });

  it('refuses an RS256 token signed by another key', async () => {
    const other = await generateKeyPair('RS256', { extractable: true });
    const v = new TokenVerifier({ publicKey: rsa.pem });
    const t = await new SignJWT({ sub: 'carol' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(other.privateKey);
    await expectRefused(v, t, /signature/);
  });

  it('refuses an expired RS256 token', async () => {
    const v = new TokenVerifier({ publicKey: rsa.pem });
    const t = await new SignJWT({ sub: 'carol', exp: nowSec() - 120 }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    await expectRefused(v, t, /expired/);
  });

  it('refuses a tampered RS256 token', async () => {
    const v = new TokenVerifier({ publicKey: rsa.pem });
    const [h, , s] = (await new SignJWT({ sub: 'carol' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(rsa.privateKey)).split('.');
    await expectRefused(v, `${h}.${b64url({ sub: 'root' })}.${s}`, /signature/);
  });

  it('refuses algorithm confusion: HS256 signed with the RSA public key PEM as secret', async () => {
    const v = new TokenVerifier({ publicKey: rsa.pem });
    const t = await hs256({ sub: 'mallory', channels: ['*'] }, enc.encode(rsa.pem));
    await expectRefused(v, t, /algorithm/);
    // same with the EC key
    const v2 = new TokenVerifier({ publicKey: ec.pem });
    await expectRefused(v2, await hs256({ sub: 'mallory' }, enc.encode(ec.pem)), /algorithm/);
  });

  it('refuses an ES256 token when only an RSA key is configured, and vice versa', async () => {
    const tEs = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('10m').sign(ec.privateKey);
    await expectRefused(new TokenVerifier({ publicKey: rsa.pem }), tEs, /algorithm/);
    const tRs = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(rsa.privateKey);
    await expectRefused(new TokenVerifier({ publicKey: ec.pem }), tRs, /algorithm/);
  });

  it('refuses an RS256 token relabelled as PS256 or RS512', async () => {
    const v = new TokenVerifier({ publicKey: rsa.pem });
    const [, p, s] = (await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(rsa.privateKey)).split('.');
    await expectRefused(v, `${b64url({ alg: 'PS256' })}.${p}.${s}`, /algorithm/);
    await expectRefused(v, `${b64url({ alg: 'RS512' })}.${p}.${s}`, /algorithm/);
  });

  it('with both a secret and a public key, accepts each algorithm with its own key only', async () => {
    const v = new TokenVerifier({ secret: SECRET, publicKey: rsa.pem });
    expect((await v.verify(await hs256({ sub: 'h' }))).user).toBe('h');
    const t = await new SignJWT({ sub: 'r' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('10m').sign(rsa.privateKey);
    expect((await v.verify(t)).user).toBe('r');
    // HS256 signed with the public key text must not verify against the secret
    await expectRefused(v, await hs256({ sub: 'mallory' }, enc.encode(rsa.pem)), /signature/);
  });

  it('rejects an Ed25519 public key at construction', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => new TokenVerifier({ publicKey: pem })).toThrow(TokenError);
    expect(() => new TokenVerifier({ publicKey: pem })).toThrow(/RSA|P-256/);
  });

  it('rejects a P-384 public key at construction', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => new TokenVerifier({ publicKey: pem })).toThrow(TokenError);
    expect(() => new TokenVerifier({ publicKey: pem })).toThrow(/P-256/);
  });

  it('rejects text that is not a PEM key at construction', () => {
    expect(() => new TokenVerifier({ publicKey: 'not a key' })).toThrow();
  });
});

describe('TokenVerifier: unconfigured', () => {
  it('is not configured without keys, and verify throws', async () => {
    for (const opts of [{}, { secret: '' }, { secret: undefined, publicKey: undefined }]) {
      const v = new TokenVerifier(opts);
      expect(v.configured).toBe(false);
      await expectRefused(v, await hs256({ sub: 'alice' }), /not accepted|--secret/);
    }
  });
});

describe('TokenVerifier: policy (--jwt-*)', () => {
  const now = nowSec;

  it('checks aud and iss when set, and only then', async () => {
    const v = new TokenVerifier({ secret: SECRET, policy: { audience: 'switchboard', issuer: 'https://auth.example' } });
    const good = await hs256({ sub: 'a', aud: 'switchboard', iss: 'https://auth.example' });
    expect((await v.verify(good)).user).toBe('a');
    await expectRefused(v, await hs256({ sub: 'a', aud: 'other', iss: 'https://auth.example' }), /"aud"/);
    await expectRefused(v, await hs256({ sub: 'a', iss: 'https://auth.example' }), /"aud"/);
    await expectRefused(v, await hs256({ sub: 'a', aud: 'switchboard', iss: 'https://evil.example' }), /"iss"/);
    await expectRefused(v, await hs256({ sub: 'a', aud: 'switchboard' }), /"iss"/);
    expect((await new TokenVerifier({ secret: SECRET }).verify(await hs256({ sub: 'a', aud: 'x', iss: 'y' }))).user).toBe('a');
  });

  it('refuses a lifetime over maxLifetime: exp − iat, or exp − now without iat (default 24 h)', async () => {
    const v = new TokenVerifier({ secret: SECRET });
    await expectRefused(v, await hs256({ sub: 'a', exp: now() + 25 * 3600 }), /longer/);
    await expectRefused(v, await hs256({ sub: 'a', iat: now() - 3600, exp: now() + 24 * 3600 }), /longer/);
    expect((await v.verify(await hs256({ sub: 'a', iat: now(), exp: now() + 23 * 3600 }))).user).toBe('a');
    const short = new TokenVerifier({ secret: SECRET, policy: { maxLifetime: 60 } });
    await expectRefused(short, await hs256({ sub: 'a', iat: now(), exp: now() + 120 }), /longer.*60 s/);
    expect((await short.verify(await hs256({ sub: 'a', iat: now(), exp: now() + 50 }))).user).toBe('a');
  });

  it('refuses an iat in the future beyond the clock skew, and tolerates the skew for exp, nbf and iat', async () => {
    const v = new TokenVerifier({ secret: SECRET, policy: { clockSkew: 30 } });
    await expectRefused(v, await hs256({ sub: 'a', iat: now() + 120, exp: now() + 600 }), /iat.*future/);
    expect((await v.verify(await hs256({ sub: 'a', iat: now() + 10, exp: now() + 600 }))).user).toBe('a');
    expect((await v.verify(await hs256({ sub: 'a', exp: now() - 10 }))).user).toBe('a');
    expect((await v.verify(await hs256({ sub: 'a', nbf: now() + 10 }))).user).toBe('a');
    await expectRefused(new TokenVerifier({ secret: SECRET, policy: { clockSkew: 0 } }), await hs256({ sub: 'a', exp: now() - 10 }), /expired/);
  });
});
