/**
 * TLS settings: `--tls-cert`/`--tls-key` are checked at load (both or
 * neither, readable, a certificate and its matching key), and the `tls-*`
 * options of broker URLs are read the same way for every broker.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAmqpUrl } from '../../src/brokers/amqp/url.js';
import { parseNatsUrl } from '../../src/brokers/nats/url.js';
import { parseRedisUrl } from '../../src/brokers/redis/url.js';
import { tlsConnectOptions } from '../../src/brokers/tls.js';
import { checkBroker } from '../../src/server/config/broker.js';
import { ConfigError } from '../../src/server/config/errors.js';
import { loadOptions } from '../../src/server/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-tls-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (const name of ['a', 'b']) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', `${name}.key`, '-out', `${name}.crt`], {
    cwd: dir,
    stdio: 'pipe',
  });
}
writeFileSync(join(dir, 'garbage.pem'), 'hello\n');

const load = (argv: string[], env: Record<string, string> = {}) =>
  loadOptions({ argv: ['--insecure', ...argv], env, readFile: (p) => readFileSync(p, 'utf8'), cwd: dir });
const problem = (argv: string[], env: Record<string, string> = {}): string => {
  try {
    load(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('--tls-cert and --tls-key', () => {
  it('take the paths (relative to the working directory) of a certificate and its key', () => {
    const o = load(['--tls-cert', 'a.crt', '--tls-key', 'a.key']);
    expect(o).toMatchObject({ tlsCert: join(dir, 'a.crt'), tlsKey: join(dir, 'a.key') });
    expect(load([], { SWITCHBOARD_TLS_CERT: 'b.crt', SWITCHBOARD_TLS_KEY: 'b.key' })).toMatchObject({ tlsCert: join(dir, 'b.crt') });
    expect(load([]).tlsCert).toBeUndefined();
  });

  it('go together', () => {
    expect(problem(['--tls-cert', 'a.crt'])).toBe('TLS needs both --tls-cert and --tls-key: --tls-cert is set, add --tls-key');
    expect(problem([], { SWITCHBOARD_TLS_KEY: 'a.key' })).toBe('TLS needs both --tls-cert and --tls-key: SWITCHBOARD_TLS_KEY is set, add --tls-cert');
  });

  it('must be readable, a certificate and a private key', () => {
    expect(problem(['--tls-cert', 'missing.crt', '--tls-key', 'a.key'])).toBe(
      `cannot read the TLS certificate file ${join(dir, 'missing.crt')} (from --tls-cert): no such file`,
    );
    expect(problem(['--tls-cert', 'garbage.pem', '--tls-key', 'a.key'])).toMatch(/is not a PEM certificate: expected a file starting with -----BEGIN CERTIFICATE-----$/);
    expect(problem(['--tls-cert', 'a.crt', '--tls-key', 'a.crt'])).toMatch(/is not a PEM private key: it holds a certificate; give the private key$/);
  });

  it('must match', () => {
    expect(problem(['--tls-cert', 'a.crt', '--tls-key', 'b.key'])).toBe(
      `the TLS key file ${join(dir, 'b.key')} (from --tls-key) does not match the certificate in ${join(dir, 'a.crt')} (from --tls-cert): give the key the certificate was made for`,
    );
  });
});

describe('tls-* options of broker URLs', () => {
  const q = 'tls-ca=/etc/ca.pem&tls-cert=/etc/c.pem&tls-key=/etc/k.pem&tls-servername=redis.internal';
  const all = { ca: '/etc/ca.pem', cert: '/etc/c.pem', key: '/etc/k.pem', servername: 'redis.internal' };

  it('are read the same for Redis, Redis Cluster, NATS and RabbitMQ', () => {
    expect(parseRedisUrl(`rediss://h:6380?${q}`)).toMatchObject({ tls: true, tlsOptions: all });
    expect(parseRedisUrl(`rediss+cluster://h1:7000,h2:7001?${q}`)).toMatchObject({ tls: true, tlsOptions: all });
    expect(parseNatsUrl(`tls://h1:4222,h2?${q}`)).toMatchObject({ tls: true, servers: ['h1:4222', 'h2:4222'], tlsOptions: all });
    const amqp = parseAmqpUrl(`amqps://u:p@h/vh?heartbeat=5&${q}&store=redis://r:6379`);
    expect(amqp.tlsOptions).toEqual(all);
    // Left out of the URL amqplib reads.
    expect(amqp.url).toBe('amqps://u:p@h/vh?heartbeat=5');
  });

  it('are refused with a plain scheme, half a client certificate, or an empty value', () => {
    expect(() => parseRedisUrl('redis://h?tls-ca=/ca.pem')).toThrow('tls-* options need a TLS URL: use rediss://');
    expect(() => parseNatsUrl('nats://h?tls-ca=/ca.pem')).toThrow('tls-* options need a TLS URL: use tls://host:4222');
    expect(() => parseAmqpUrl('amqp://h?tls-ca=/ca.pem&store=redis://r')).toThrow('tls-* options need a TLS URL: use amqps://');
    expect(() => parseRedisUrl('rediss://h?tls-cert=/c.pem')).toThrow('tls-cert and tls-key go together');
    expect(() => parseNatsUrl('tls://h?tls-ca=')).toThrow('tls-ca= is empty');
  });

  it('tls:// is a NATS broker URL, alone or as a seed list', () => {
    expect(checkBroker('tls://nats.internal:4222')).toEqual({ ok: true, kind: 'nats' });
    expect(checkBroker('tls://n1:4222,n2:4222?tls-ca=/ca.pem')).toEqual({ ok: true, kind: 'nats' });
    expect(parseNatsUrl('nats://h').tls).toBeUndefined();
  });

  it('name the option and the file that cannot be read', () => {
    expect(() => tlsConnectOptions({ ca: join(dir, 'missing.pem') })).toThrow(`tls-ca=${join(dir, 'missing.pem')}: cannot read it (ENOENT)`);
    expect(tlsConnectOptions({ ca: join(dir, 'a.crt'), servername: 'x' })).toEqual({ ca: readFileSync(join(dir, 'a.crt'), 'utf8'), servername: 'x' });
  });
});
