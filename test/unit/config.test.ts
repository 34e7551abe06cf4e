/**
 * Configuration loading without a subprocess: flags, `SWITCHBOARD_*`
 * variables and the `--config` file go in, `NodeOptions` or a one-line
 * `ConfigError` comes out. Files are served from a map, except the public
 * keys, which are real PEM files in a temporary folder.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBroker, redactBroker } from '../../src/server/config/broker.js';
import { ConfigError, describeReadError } from '../../src/server/config/errors.js';
import { wantsHelp } from '../../src/server/config/flags.js';
import { loadConfig, loadOptions, type LoadedConfig } from '../../src/server/config/load.js';
import { SETTING_KEYS, envName, fileKey, specOf } from '../../src/server/config/settings.js';
import { helpText } from '../../src/server/config/usage.js';
import { DEFAULT_LIMITS, DEFAULT_NAMESPACE, DEFAULT_PERSONAL_NAMESPACE, withDefaults, type NodeOptions } from '../../src/server/options.js';

const CWD = '/app';
const SECRET = 'a-secret-that-is-long-enough-for-hs256';

interface Input {
  env?: Record<string, string>;
  files?: Record<string, string>;
  cwd?: string;
}

/** A reader over an in-memory folder; missing files fail like fs does. */
function reader(files: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    return text;
  };
}

function load(argv: string[], input: Input = {}): LoadedConfig {
  return loadConfig({ argv, env: input.env ?? {}, readFile: reader(input.files ?? {}), cwd: input.cwd ?? CWD });
}

function options(argv: string[], input: Input = {}): NodeOptions {
  return load(argv, input).options;
}

/** The message of the ConfigError that loading throws; checks it is one line. */
function problem(argv: string[], input: Input = {}): string {
  try {
    load(argv, input);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.message).not.toMatch(/\n/);
    return err.message;
  }
  throw new Error('expected a ConfigError');
}

/** Loads with a config file at /app/sb.json holding `json` (an object, or raw text). */
function withFile(json: unknown, argv: string[] = ['--insecure'], env: Record<string, string> = {}): NodeOptions {
  return options([...argv, '--config', 'sb.json'], { env, files: { '/app/sb.json': typeof json === 'string' ? json : JSON.stringify(json) } });
}

function fileProblem(json: unknown, argv: string[] = ['--insecure']): string {
  return problem([...argv, '--config', 'sb.json'], { files: { '/app/sb.json': typeof json === 'string' ? json : JSON.stringify(json) } });
}

describe('defaults', () => {
  it('fill everything that is not given', () => {
    const o = options(['--insecure']);
    // Under --insecure the host defaults to loopback (see 'where an --insecure node listens').
    const d = withDefaults({ nodeId: o.nodeId, insecure: true, host: '127.0.0.1' });
    expect(o).toEqual(d);
    expect(o).toMatchObject({ port: 8080, host: '127.0.0.1', broker: 'memory', routing: 'interest', workers: 1, drainTimeout: 30 });
    expect(o.limits).toEqual(DEFAULT_LIMITS);
    expect(o.defaultNamespace).toEqual(DEFAULT_NAMESPACE);
    expect(o.namespaces).toEqual({ user: DEFAULT_PERSONAL_NAMESPACE });
    expect(o.nodeId).toMatch(/^[A-Za-z0-9_.-]+-\d+-[a-z0-9]+$/);
    expect(o.secret).toBeUndefined();
    expect(o.publicKey).toBeUndefined();
    expect(o.apiKeys).toEqual([]);
  });

  it('loadOptions is loadConfig without the warnings', () => {
    const o = loadOptions({ argv: ['--insecure', '--node-id', 'n1'], env: {}, readFile: reader({}), cwd: CWD });
    expect(o.nodeId).toBe('n1');
    expect(o.insecure).toBe(true);
  });
});

describe('where an --insecure node listens', () => {
  it('127.0.0.1 when no host is given; 0.0.0.0 stays the default with authentication', () => {
    expect(options(['--insecure']).host).toBe('127.0.0.1');
    expect(options(['--insecure', '--broker', 'memory', '--port', '9000']).host).toBe('127.0.0.1');
    expect(options([], { env: { SWITCHBOARD_INSECURE: '1' } }).host).toBe('127.0.0.1');
    expect(withFile({ insecure: true }, []).host).toBe('127.0.0.1');
    expect(options(['--secret', SECRET]).host).toBe('0.0.0.0');
  });

  it('the host given explicitly, by flag, environment or config file', () => {
    expect(options(['--insecure', '--host', '0.0.0.0']).host).toBe('0.0.0.0');
    expect(options(['--host=::', '--insecure']).host).toBe('::');
    expect(options(['--insecure'], { env: { SWITCHBOARD_HOST: '0.0.0.0' } }).host).toBe('0.0.0.0');
    expect(withFile({ host: '10.0.0.1' }).host).toBe('10.0.0.1');
    expect(withFile({ insecure: true, host: '0.0.0.0' }, []).host).toBe('0.0.0.0');
  });
});

describe('precedence: flags > environment > file > defaults', () => {
  const file = { port: 1000, host: '10.0.0.1', limits: { maxFrameBytes: 1111 }, apiKeys: ['from-file'] };

  it('the file overrides the defaults', () => {
    const o = withFile(file);
    expect(o.port).toBe(1000);
    expect(o.host).toBe('10.0.0.1');
    expect(o.limits.maxFrameBytes).toBe(1111);
    expect(o.limits.maxConnections).toBe(DEFAULT_LIMITS.maxConnections);
    expect(o.apiKeys).toEqual(['from-file']);
  });

  it('the environment overrides the file', () => {
    const o = withFile(file, ['--insecure'], { SWITCHBOARD_PORT: '2000', SWITCHBOARD_MAX_FRAME_BYTES: '2222', SWITCHBOARD_API_KEY: 'e1,e2' });
    expect(o.port).toBe(2000);
    expect(o.host).toBe('10.0.0.1');
    expect(o.limits.maxFrameBytes).toBe(2222);
    expect(o.apiKeys).toEqual(['e1', 'e2']);
  });

  it('flags override the environment (a flag list replaces the env list)', () => {
    const o = withFile(file, ['--insecure', '--port', '3000', '--max-frame-bytes=3333', '--api-key', 'f1'], {
      SWITCHBOARD_PORT: '2000',
      SWITCHBOARD_MAX_FRAME_BYTES: '2222',
      SWITCHBOARD_API_KEY: 'e1,e2',
    });
    expect(o.port).toBe(3000);
    expect(o.limits.maxFrameBytes).toBe(3333);
    expect(o.apiKeys).toEqual(['f1']);
  });

  it('a value that does not win is still checked (a bad env var is an error even when a flag overrides it)', () => {
    expect(problem(['--insecure', '--port', '1'], { env: { SWITCHBOARD_PORT: 'x' } })).toContain('SWITCHBOARD_PORT');
  });

  it('a later flag overrides an earlier one', () => {
    expect(options(['--insecure', '--port', '1', '--port=2']).port).toBe(2);
  });

  it('an empty environment variable counts as unset', () => {
    const o = withFile({ port: 1000 }, ['--insecure'], { SWITCHBOARD_PORT: '', SWITCHBOARD_API_KEY: ' , ' });
    expect(o.port).toBe(1000);
  });

  it('--config beats SWITCHBOARD_CONFIG', () => {
    const files = { '/app/a.json': '{"port": 1}', '/app/b.json': '{"port": 2}' };
    expect(options(['--insecure'], { env: { SWITCHBOARD_CONFIG: 'a.json' }, files }).port).toBe(1);
    expect(options(['--insecure', '--config=b.json'], { env: { SWITCHBOARD_CONFIG: 'a.json' }, files }).port).toBe(2);
    expect(load(['--insecure', '--config', 'b.json'], { files }).configFile).toBe('/app/b.json');
  });
});

describe('every setting, from each source', () => {
  const expected = {
    port: 9001,
    host: '127.0.0.1',
    nodeId: 'node-a',
    broker: 'memory',
    routing: 'interest',
    apiKeys: ['k1', 'k2'],
    insecure: true,
    workers: 1,
    drainTimeout: 7,
    ping: 11,
    pongTimeout: 4,
    trustProxy: true,
    logLevel: 'debug',
    limits: {
      maxFrameBytes: 100,
      maxConnections: 200,
      maxConnectionsPerIpPerSecond: 0,
      maxMessagesPerSecond: 300,
      maxSubscriptions: 400,
      maxBufferedBytes: 500,
      maxBodyBytes: 600,
    },
  };
  const flags = [
    ['--port', '9001'],
    ['--host', '127.0.0.1'],
    ['--node-id', 'node-a'],
    ['--broker', 'memory'],
    ['--routing', 'interest'],
    ['--api-key', 'k1'],
    ['--api-key', 'k2'],
    ['--insecure'],
    ['--workers', '1'],
    ['--drain-timeout', '7'],
    ['--ping', '11'],
    ['--pong-timeout', '4'],
    ['--trust-proxy'],
    ['--log-level', 'debug'],
    ['--max-frame-bytes', '100'],
    ['--max-connections', '200'],
    ['--max-connections-per-ip-per-second', '0'],
    ['--max-messages-per-second', '300'],
    ['--max-subscriptions', '400'],
    ['--max-buffered-bytes', '500'],
    ['--max-body-bytes', '600'],
  ];

  it('as --flag value', () => {
    expect(options(flags.flat())).toMatchObject(expected);
  });

  it('as --flag=value', () => {
    expect(options(flags.map((f) => f.join('=')))).toMatchObject(expected);
  });

  it('as SWITCHBOARD_* variables', () => {
    const env: Record<string, string> = {};
    for (const [flag, value] of flags) {
      const name = envName((flag ?? '').slice(2));
      env[name] = env[name] === undefined ? (value ?? '1') : `${env[name]},${value ?? ''}`;
    }
    expect(env.SWITCHBOARD_API_KEY).toBe('k1,k2');
    expect(env.SWITCHBOARD_MAX_CONNECTIONS_PER_IP_PER_SECOND).toBe('0');
    expect(options([], { env })).toMatchObject(expected);
  });

  it('as config file keys', () => {
    expect(withFile(expected, [])).toMatchObject(expected);
  });

  it('every whole-number setting given as a flag reaches NodeOptions (none is parsed and then dropped)', () => {
    for (const key of SETTING_KEYS) {
      const spec = specOf(key);
      if (spec.kind !== 'integer') continue;
      // A value inside the range that is not the default.
      const value = spec.max > spec.min + 1 ? spec.min + 1 : spec.max;
      const o = options(['--insecure', `--${spec.flag}`, String(value)]);
      const got = (key in o.limits ? o.limits[key as keyof typeof o.limits] : o[key as keyof typeof o]) as unknown;
      expect(got, `--${spec.flag}`).toBe(value);
    }
  });

  it('the settings table covers every NodeOptions field and limit', () => {
    const o = options(['--insecure']);
    const fields = [...Object.keys(o).filter((k) => !['limits', 'defaultNamespace', 'namespaces'].includes(k)), ...Object.keys(o.limits)];
    expect([...SETTING_KEYS].sort()).toEqual([...fields, 'secret', 'publicKey', 'advertiseUrl', 'webhook', 'webhookSecret', 'rpcHook', 'connectHook', 'refreshHook', 'subscribeHook', 'publishHook', 'hookSecret', 'clusterSecrets', 'tlsCert', 'tlsKey', 'jwtAudience', 'jwtIssuer', 'maxTcpConnections', 'metricsPort'].sort());
  });
});

describe('flags', () => {
  it('an unknown flag is an error that names it, with a suggestion', () => {
    expect(problem(['--prot', '80'])).toBe('unknown flag --prot (did you mean --port?): see switchboard --help');
    expect(problem(['-p', '80'])).toMatch(/^unknown flag -p: see switchboard --help$/);
    expect(problem(['--frobnicate'])).toBe('unknown flag --frobnicate: see switchboard --help');
  });

  it('a flag without its value is an error, and the next flag is not taken as one', () => {
    expect(problem(['--insecure', '--port'])).toBe('--port needs a value: write --port VALUE or --port=VALUE');
    expect(problem(['--port', '--insecure'])).toBe('--port needs a value: write --port VALUE or --port=VALUE');
    expect(options(['--insecure', '--node-id=-x']).nodeId).toBe('-x');
  });

  it('a stray argument is an error', () => {
    expect(problem(['--insecure', 'extra'])).toMatch(/^unexpected argument "extra": write flags as --name value or --name=value/);
    expect(problem(['--insecure', '--', '--port'])).toMatch(/^unexpected argument "--port"/);
  });

  it('switches take no value on the command line', () => {
    expect(problem(['--insecure=false'])).toBe(
      '--insecure takes no value, got --insecure=false: give the flag to turn it on, leave it out to turn it off',
    );
    expect(options(['--insecure']).trustProxy).toBe(false);
    expect(options(['--insecure', '--trust-proxy']).trustProxy).toBe(true);
  });

  it('--api-key may repeat, in order, and may not be empty', () => {
    expect(options(['--insecure', '--api-key', 'a', '--api-key=b', '--api-key', 'c']).apiKeys).toEqual(['a', 'b', 'c']);
    expect(problem(['--insecure', '--api-key='])).toBe('--api-key must not be empty');
  });

  it('an empty value is an error', () => {
    expect(problem(['--insecure', '--host='])).toBe('--host must not be empty');
    expect(problem(['--secret='])).toBe('--secret must not be empty');
  });

  it('--help and -h are found anywhere, even among bad flags', () => {
    expect(wantsHelp(['--port', '1', '--help'])).toBe(true);
    expect(wantsHelp(['--prot', '-h'])).toBe(true);
    expect(wantsHelp(['--port', '1'])).toBe(false);
  });
});

describe('environment', () => {
  it('switches accept 1, true, 0, false in any case', () => {
    for (const [text, value] of [['1', true], ['true', true], ['TRUE', true], ['0', false], ['false', false], [' False ', false]] as const) {
      const o = options(['--connect-hook', 'https://backend.internal/connect', '--hook-secret', SECRET], { env: { SWITCHBOARD_INSECURE: text, SWITCHBOARD_TRUST_PROXY: text } });
      expect(o.insecure).toBe(value);
      expect(o.trustProxy).toBe(value);
    }
  });

  it('other switch words are errors naming the variable', () => {
    expect(problem([], { env: { SWITCHBOARD_INSECURE: 'yes' } })).toBe('SWITCHBOARD_INSECURE must be 1, true, 0 or false, got "yes"');
  });

  it('SWITCHBOARD_INSECURE=0 does not count as authentication', () => {
    expect(problem([], { env: { SWITCHBOARD_INSECURE: '0' } })).toMatch(/^no authentication configured/);
  });

  it('SWITCHBOARD_API_KEY is a comma-separated list; spaces and empty items are dropped', () => {
    expect(options(['--insecure'], { env: { SWITCHBOARD_API_KEY: 'a, b,,c ' } }).apiKeys).toEqual(['a', 'b', 'c']);
  });

  it('numbers in the environment may have surrounding spaces (as from files or YAML)', () => {
    expect(options(['--insecure'], { env: { SWITCHBOARD_PORT: ' 81\n' } }).port).toBe(81);
  });

  it('an unknown SWITCHBOARD_* variable is a warning with a suggestion, not an error', () => {
    const { warnings, options: o } = load(['--insecure'], { env: { SWITCHBOARD_PROT: '1', HOME: '/root' } });
    expect(o.port).toBe(8080);
    expect(warnings).toEqual(['SWITCHBOARD_PROT is not a setting and is ignored (did you mean SWITCHBOARD_PORT?)']);
  });

  it('a removed setting says it was removed and why: an error as a flag or a file key, a warning as a variable', () => {
    expect(problem(['--presence-ttl', '30'])).toMatch(/^--presence-ttl was removed \(presence entries no longer expire: .*--heartbeat × --dead-after-beats\): leave it out$/);
    expect(fileProblem({ presenceTtl: 30 })).toMatch(/^"presenceTtl" in config file \/app\/sb.json was removed \(presence entries no longer expire: .*\): leave it out$/);
    const { warnings } = load(['--insecure'], { env: { SWITCHBOARD_PRESENCE_TTL: '30' } });
    expect(warnings).toEqual([expect.stringMatching(/^SWITCHBOARD_PRESENCE_TTL was removed and is ignored \(presence entries no longer expire: /)]);
  });
});

describe('numbers', () => {
  it('are whole numbers within range', () => {
    for (const bad of ['abc', '80.5', '1e3', '0x50', '-1', '65536', '', '99999999999999999999']) {
      const message = problem(['--insecure', `--port=${bad}`]);
      expect(message).toMatch(bad === '' ? /^--port must be a whole number from 0 to 65535, got ""$/ : /^--port must be a whole number from 0 to 65535, got "/);
    }
    expect(options(['--insecure', '--port', '0']).port).toBe(0);
    expect(options(['--insecure', '--port', '65535']).port).toBe(65535);
  });

  it('limits are positive; max-connections-per-ip-per-second may be 0 (no limit)', () => {
    expect(problem(['--insecure', '--max-frame-bytes', '0'])).toBe('--max-frame-bytes must be a whole number of at least 1, got "0"');
    for (const flag of ['max-connections', 'max-messages-per-second', 'max-subscriptions', 'max-buffered-bytes', 'max-body-bytes']) {
      expect(problem(['--insecure', `--${flag}`, '0'])).toBe(`--${flag} must be a whole number of at least 1, got "0"`);
    }
    expect(options(['--insecure', '--max-connections-per-ip-per-second', '0']).limits.maxConnectionsPerIpPerSecond).toBe(0);
  });

  it('workers are at least 1; timings have ranges', () => {
    expect(problem(['--insecure', '--workers', '0'])).toBe('--workers must be a whole number from 1 to 1024, got "0"');
    expect(problem(['--insecure', '--ping', '0'])).toBe('--ping must be a whole number from 1 to 3600, got "0"');
    expect(problem(['--insecure', '--pong-timeout', '0'])).toBe('--pong-timeout must be a whole number from 1 to 3600, got "0"');
    expect(problem(['--insecure', '--drain-timeout', '-1'])).toBe('--drain-timeout must be a whole number from 0 to 86400, got "-1"');
    expect(options(['--insecure', '--drain-timeout', '0']).drainTimeout).toBe(0);
  });

  it('--write-delay is 0–100 ms, 0 by default, from a flag, the environment or the file', () => {
    expect(options(['--insecure']).writeDelay).toBe(0);
    expect(options(['--insecure', '--write-delay', '5']).writeDelay).toBe(5);
    expect(options(['--insecure'], { env: { SWITCHBOARD_WRITE_DELAY: '100' } }).writeDelay).toBe(100);
    expect(withFile({ writeDelay: 2 }).writeDelay).toBe(2);
    for (const bad of ['101', '-1', '5ms', '0.5']) {
      expect(problem(['--insecure', `--write-delay=${bad}`])).toBe(`--write-delay must be a whole number from 0 to 100, got "${bad}"`);
    }
  });

  it('--first-frame-timeout is 100–60000 ms, 5000 by default, from a flag, the environment or the file', () => {
    expect(options(['--insecure']).firstFrameTimeout).toBe(5000);
    expect(options(['--insecure', '--first-frame-timeout', '300']).firstFrameTimeout).toBe(300);
    expect(options(['--insecure'], { env: { SWITCHBOARD_FIRST_FRAME_TIMEOUT: '100' } }).firstFrameTimeout).toBe(100);
    expect(withFile({ firstFrameTimeout: 60_000 }).firstFrameTimeout).toBe(60_000);
    for (const bad of ['99', '60001', '0', '-300', '5s', '2.5', 'abc']) {
      expect(problem(['--insecure', `--first-frame-timeout=${bad}`])).toBe(`--first-frame-timeout must be a whole number from 100 to 60000, got "${bad}"`);
    }
    expect(problem(['--insecure'], { env: { SWITCHBOARD_FIRST_FRAME_TIMEOUT: '5s' } })).toBe(
      'SWITCHBOARD_FIRST_FRAME_TIMEOUT must be a whole number from 100 to 60000, got "5s"',
    );
    expect(fileProblem({ firstFrameTimeout: 70_000 })).toMatch(/^"firstFrameTimeout" in config file \/app\/sb\.json must be a whole number from 100 to 60000, got 70000/);
  });

  it('in the environment the message names the variable', () => {
    expect(problem(['--insecure'], { env: { SWITCHBOARD_MAX_BODY_BYTES: '1.5' } })).toBe(
      'SWITCHBOARD_MAX_BODY_BYTES must be a whole number of at least 1, got "1.5"',
    );
  });
});

describe('broker', () => {
  it('memory is the default and accepted', () => {
    expect(options(['--insecure', '--broker', 'memory']).broker).toBe('memory');
  });

  it('well-formed URLs of every kind are recognised', () => {
    expect(checkBroker('redis://localhost:6379')).toEqual({ ok: true, kind: 'redis' });
    expect(checkBroker('rediss://user:pw@cache.example.com:6380/0')).toEqual({ ok: true, kind: 'redis' });
    expect(checkBroker('redis+cluster://h1:7000,h2:7001,[::1]:7002')).toEqual({ ok: true, kind: 'redis-cluster' });
    expect(checkBroker('redis+cluster://:pw@h1:7000,h2:7001')).toEqual({ ok: true, kind: 'redis-cluster' });
    expect(checkBroker('nats://nats:4222')).toEqual({ ok: true, kind: 'nats' });
    expect(checkBroker('nats://n1:4222,n2,[::1]:4223/?prefix=app')).toEqual({ ok: true, kind: 'nats' });
    expect(checkBroker('nats://user:pw@n1:4222,n2:4223')).toEqual({ ok: true, kind: 'nats' });
    expect(checkBroker('nats://n1:4222,n2:99999')).toEqual({ ok: false, problem: 'has "n2:99999" where a host or host:port was expected' });
    expect(checkBroker('nats://n1:4222,')).toEqual({ ok: false, problem: 'has "" where a host or host:port was expected' });
    expect(checkBroker('amqp://guest:guest@rabbit:5672/vhost')).toEqual({ ok: true, kind: 'amqp' });
    expect(checkBroker('amqps://rabbit')).toEqual({ ok: true, kind: 'amqp' });
  });

  it('NATS runs interest and broadcast routing, and refuses the routings that need a registry read with the store', () => {
    expect(options(['--insecure', '--broker', 'nats://h:4222']).broker).toBe('nats://h:4222');
    expect(options(['--insecure', '--broker', 'nats://h:4222', '--routing', 'broadcast']).routing).toBe('broadcast');
    for (const routing of ['registry', 'hashring']) {
      expect(problem(['--insecure', '--broker', 'nats://h:4222', '--routing', routing])).toMatch(
        new RegExp(`^--routing: routing ${routing} does not work over the NATS broker: NATS cannot read a registry in the same step as storing a message`),
      );
    }
  });

  it('RabbitMQ needs a Redis store for history and presence, named in its URL', () => {
    const url = 'amqp://guest:guest@rabbit:5672/?store=redis://cache:6379';
    expect(options(['--insecure', '--broker', url, '--routing', 'registry']).broker).toBe(url);
    expect(problem(['--insecure', '--broker', 'amqp://rabbit'])).toBe(
      '--broker: the RabbitMQ broker keeps history, presence and its registry in Redis: add ?store=redis://host:6379 (or redis+cluster://…) to the amqp:// URL',
    );
    expect(problem(['--insecure', '--broker', 'amqp://rabbit/?store=nats://x:4222'])).toMatch(
      /^--broker: the store of the RabbitMQ broker must be a redis:\/\/ or redis\+cluster:\/\/ URL/,
    );
    expect(problem(['--insecure'], { env: { SWITCHBOARD_BROKER: 'amqps://rabbit' } })).toMatch(/^SWITCHBOARD_BROKER: the RabbitMQ broker keeps history/);
    // An unencoded redis+cluster:// store keeps its `+`.
    const cluster = 'amqp://rabbit/?store=redis+cluster://h1:7000,h2:7001';
    expect(options(['--insecure', '--broker', cluster]).broker).toBe(cluster);
    expect(redactBroker('amqp://u:hunter2@rabbit/?store=redis://:sekret@cache:6379&prefix=x')).toBe('amqp://u:***@rabbit/?store=redis://:***@cache:6379&prefix=x');
  });

  it('--workers > 1 runs with any broker, but not with hash-ring redirects (the workers share one URL)', () => {
    expect(options(['--insecure', '--broker', 'redis://h:6379', '--workers', '4']).workers).toBe(4);
    expect(problem(['--insecure', '--broker', 'redis://h:6379', '--routing', 'hashring', '--hashring-redirect', '--workers', '2'])).toMatch(
      /^--hashring-redirect needs every node at a URL of its own, but the 2 workers \(--workers\) share one port/,
    );
    expect(options(['--insecure', '--broker', 'redis://h:6379', '--routing', 'hashring', '--workers', '2']).workers).toBe(2);
  });

  it('Redis and Redis Cluster brokers are accepted', () => {
    expect(loadOptions({ argv: ['--insecure', '--broker', 'redis://localhost:6379'] }).broker).toBe('redis://localhost:6379');
    expect(loadOptions({ argv: ['--insecure', '--broker', 'rediss://h:6380'] }).broker).toBe('rediss://h:6380');
    expect(loadOptions({ argv: ['--insecure', '--broker', 'redis+cluster://h1:1,h2:2'] }).broker).toBe('redis+cluster://h1:1,h2:2');
    expect(loadOptions({ argv: ['--insecure', '--broker', 'rediss+cluster://h1:1,h2:2'] }).broker).toBe('rediss+cluster://h1:1,h2:2');
  });

  it('passwords in broker URLs are never echoed', () => {
    expect(redactBroker('redis://user:hunter2@h:6379')).toBe('redis://user:***@h:6379');
    expect(redactBroker('redis+cluster://:hunter2@h1:1,h2:2')).toBe('redis+cluster://:***@h1:1,h2:2');
    expect(redactBroker('nats://token@h')).toBe('nats://token@h');
    expect(problem(['--insecure', '--broker', 'amqp://u:hunter2@h'])).not.toContain('hunter2');
    expect(problem(['--insecure', '--broker', 'http://u:hunter2@h'])).not.toContain('hunter2');
  });

  it('a malformed value says what forms are accepted', () => {
    const cases: [string, string][] = [
      ['not a url', 'is not memory or a URL'],
      ['http://h', 'has an unknown scheme http'],
      ['localhost:6379', 'has an unknown scheme localhost'],
      ['redis://', 'has no host'],
      ['redis+cluster://', 'has no host:port list'],
      ['redis+cluster://h1:7000,h2', 'has "h2" where a host:port was expected'],
      ['redis+cluster://h1:99999', 'has "h1:99999" where a host:port was expected'],
    ];
    for (const [value, what] of cases) {
      expect(problem(['--insecure', '--broker', value])).toBe(
        `--broker: ${JSON.stringify(value)} ${what}: use memory, redis://host:6379, rediss://…, redis+cluster://h1:p1,h2:p2, rediss+cluster://…, nats://host:4222, amqp://host:5672 or amqps://…`,
      );
    }
  });
});

describe('routing, workers, log level, node id', () => {
  it('an unknown routing lists the known ones', () => {
    expect(problem(['--insecure', '--routing', 'random'])).toBe('--routing must be one of interest, broadcast, registry, hashring, got "random"');
  });

  it('every routing strategy is accepted and reaches the options', () => {
    for (const routing of ['interest', 'broadcast', 'registry', 'hashring'] as const) {
      expect(options(['--insecure', '--routing', routing]).routing).toBe(routing);
    }
    expect(options(['--insecure']).routing).toBe('interest');
  });

  it('--hashring-redirect needs hashring routing', () => {
    expect(problem(['--insecure', '--hashring-redirect'])).toBe(
      '--hashring-redirect only applies to --routing hashring (the routing is interest)',
    );
    const o = options(['--insecure', '--routing', 'hashring', '--hashring-redirect']);
    expect(o.hashringRedirect).toBe(true);
    expect(options(['--insecure', '--routing', 'hashring']).hashringRedirect).toBe(false);
  });

  it('--advertise-url must be a ws:// or wss:// URL', () => {
    expect(options(['--insecure', '--advertise-url', 'wss://gw-3.example.com/ws']).advertiseUrl).toBe('wss://gw-3.example.com/ws');
    expect(problem(['--insecure', '--advertise-url', 'http://x:8080/ws'])).toBe(
      '--advertise-url: "http://x:8080/ws" must be a ws:// or wss:// URL, e.g. ws://10.0.0.5:8080/ws',
    );
    expect(problem(['--insecure', '--advertise-url', 'not a url'])).toMatch(/^--advertise-url: "not a url" must be a ws:\/\/ or wss:\/\/ URL/);
  });

  it('--advertise-url is bounded and carries no credentials: other nodes would drop such a heartbeat', () => {
    const long = `wss://gw.example.com/${'a'.repeat(2100)}`;
    expect(problem(['--insecure', '--advertise-url', long])).toMatch(/^--advertise-url: .* must be at most 2048 characters, without a user name or password$/);
    expect(problem(['--insecure', '--advertise-url', 'wss://u:p@gw.example.com/ws'])).toMatch(/must be at most 2048 characters, without a user name or password$/);
  });

  it('--cluster-secret is repeatable, read from SWITCHBOARD_CLUSTER_SECRET (comma-separated) and never echoed', () => {
    expect(options(['--insecure']).clusterSecrets).toBeUndefined();
    expect(options(['--insecure', '--cluster-secret', 'new-key', '--cluster-secret', 'old-key']).clusterSecrets).toEqual(['new-key', 'old-key']);
    expect(options(['--insecure'], { env: { SWITCHBOARD_CLUSTER_SECRET: 'k1,k2' } }).clusterSecrets).toEqual(['k1', 'k2']);
    expect(specOf('clusterSecrets').sensitive).toBe(true);
  });

  it('workers share the memory broker through the primary: memory with several workers is accepted', () => {
    expect(options(['--insecure', '--workers', '2']).workers).toBe(2);
    expect(options(['--insecure', '--workers', '1']).workers).toBe(1);
  });

  it('log levels are pino levels', () => {
    expect(options(['--insecure', '--log-level', 'silent']).logLevel).toBe('silent');
    expect(problem(['--insecure', '--log-level', 'verbose'])).toBe(
      '--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    );
  });

  it('node ids are 1–64 characters of A-Za-z0-9_-.', () => {
    expect(options(['--insecure', '--node-id', 'gw-1.eu_west']).nodeId).toBe('gw-1.eu_west');
    expect(problem(['--insecure', '--node-id', 'a b'])).toBe('--node-id: "a b" must be 1–64 characters of A-Za-z0-9_-.');
    expect(problem(['--insecure', '--node-id', 'x'.repeat(65)])).toMatch(/^--node-id: "x+\.\.\." must be 1–64 characters/);
  });
});

describe('authentication', () => {
  it('is required: no secret, public key or --insecure is an error', () => {
    const message = 'no authentication configured, so every connection would be refused: pass --secret, --public-key or --insecure (development only)';
    expect(problem([])).toBe(message);
    expect(problem(['--port', '1', '--api-key', 'k'])).toBe(message);
  });

  it('--secret, --insecure or the env variables are enough', () => {
    expect(options(['--secret', SECRET]).secret).toBe(SECRET);
    expect(options([], { env: { SWITCHBOARD_SECRET: SECRET } }).secret).toBe(SECRET);
    expect(options([], { env: { SWITCHBOARD_INSECURE: 'true' } }).insecure).toBe(true);
  });

  it('--insecure with a token key is an error: it would let ?user= in without a token', () => {
    expect(problem(['--insecure', '--secret', SECRET])).toBe(
      '--insecure (from --insecure) cannot be combined with a token key (--secret): it would accept ?user=<id> without a token; drop one of them',
    );
    expect(problem([], { env: { SWITCHBOARD_INSECURE: '1', SWITCHBOARD_SECRET: SECRET } })).toMatch(/^--insecure \(from SWITCHBOARD_INSECURE\) cannot be combined with a token key \(SWITCHBOARD_SECRET\)/);
  });

  it('origin patterns are a scheme and a host (with * and a port), *, or null', () => {
    expect(options(['--insecure', '--allowed-origins', 'https://*.example.com', '--allowed-origins=http://localhost:3000', '--allowed-origins', '*', '--allowed-origins', 'null']).allowedOrigins).toEqual([
      'https://*.example.com',
      'http://localhost:3000',
      '*',
      'null',
    ]);
    expect(options(['--insecure']).allowedOrigins).toEqual([]);
    expect(options([], { env: { SWITCHBOARD_INSECURE: '1', SWITCHBOARD_ALLOWED_ORIGINS: 'https://a.example, http://[::1]:8080' } }).allowedOrigins).toEqual([
      'https://a.example',
      'http://[::1]:8080',
    ]);
    expect(problem(['--insecure', '--allowed-origins', 'example.com'])).toBe(
      '--allowed-origins: "example.com" must be an origin such as https://app.example.com or https://*.example.com (scheme and host, no path), or *',
    );
    expect(problem(['--insecure'], { env: { SWITCHBOARD_ALLOWED_ORIGINS: 'https://a.example, https://b.example/app' } })).toMatch(/^SWITCHBOARD_ALLOWED_ORIGINS: "https:\/\/b\.example\/app" must be an origin/);
  });

  it('HTTP hardening has defaults: 30 s idle, 10 s headers, metrics on the main port, no sourcemap', () => {
    const o = options(['--insecure']);
    expect([o.httpIdleTimeout, o.headersTimeout, o.maxTcpConnections, o.metricsPort, o.serveSourcemaps]).toEqual([30, 10, undefined, undefined, false]);
  });

  it('a short secret is accepted with a warning that does not show it', () => {
    const { warnings, options: o } = load(['--secret', 'short']);
    expect(o.secret).toBe('short');
    expect(warnings).toEqual(['the secret (from --secret) is shorter than 32 characters and easy to guess: use a long random one']);
  });

  it('secrets and API keys are never echoed in errors', () => {
    expect(fileProblem({ secret: 42 }, [])).toBe('"secret" in config file /app/sb.json must be a string, got 42');
    expect(fileProblem({ apiKeys: 'hunter2' })).toBe('"apiKeys" in config file /app/sb.json must be an array of non-empty strings, got a string');
  });
});

describe('public key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const pem = (key: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer }): string => String(key.export({ type: 'spki', format: 'pem' }));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const files = {
    rsa: pem(rsa.publicKey),
    ec: pem(ec.publicKey),
    p384: pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey),
    ed: pem(generateKeyPairSync('ed25519').publicKey),
    private: String(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })),
    garbage: 'hello\n',
    truncated: `${pem(rsa.publicKey).slice(0, 80)}\n-----END PUBLIC KEY-----\n`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.pem`), text);
  const real = (path: string): string => readFileSync(path, 'utf8');
  const loadReal = (argv: string[], env: Record<string, string> = {}): NodeOptions =>
    loadOptions({ argv, env, readFile: real, cwd: dir });
  const problemReal = (argv: string[]): string => {
    try {
      loadReal(argv);
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads the PEM text of an RSA or P-256 key from the file (relative to the working directory)', () => {
    expect(loadReal(['--public-key', 'rsa.pem']).publicKey).toBe(files.rsa);
    expect(loadReal(['--public-key', join(dir, 'ec.pem')]).publicKey).toBe(files.ec);
    expect(loadReal([], { SWITCHBOARD_PUBLIC_KEY: 'ec.pem' }).publicKey).toBe(files.ec);
    expect(files.rsa).toContain('-----BEGIN PUBLIC KEY-----');
  });

  it('counts as authentication', () => {
    expect(loadReal(['--public-key', 'rsa.pem']).insecure).toBe(false);
  });

  it('cannot be combined with --insecure', () => {
    expect(problemReal(['--insecure', '--public-key', 'rsa.pem'])).toMatch(/^--insecure \(from --insecure\) cannot be combined with a token key \(--public-key\)/);
  });

  it('an unreadable file is an error naming the path', () => {
    expect(problemReal(['--public-key', 'missing.pem'])).toBe(`cannot read the public key file ${join(dir, 'missing.pem')} (from --public-key): no such file`);
    expect(problemReal(['--public-key', '.'])).toBe(`cannot read the public key file ${dir} (from --public-key): it is a directory`);
  });

  it('a file that is not a PEM public key is an error saying what was expected', () => {
    expect(problemReal(['--public-key', 'garbage.pem'])).toBe(
      `the public key file ${join(dir, 'garbage.pem')} (from --public-key) is not a PEM public key: expected a PEM file starting with -----BEGIN PUBLIC KEY-----`,
    );
    expect(problemReal(['--public-key', 'private.pem'])).toBe(
      `the public key file ${join(dir, 'private.pem')} (from --public-key) is not a PEM public key: it holds a private key; give the public one (openssl pkey -in key.pem -pubout)`,
    );
    expect(problemReal(['--public-key', 'truncated.pem'])).toMatch(/is not a valid PEM public key: check that it is not truncated$/);
  });

  it('keys the token verifier cannot use are refused', () => {
    expect(problemReal(['--public-key', 'ed.pem'])).toMatch(/holds an ed25519 key: use an RSA key \(RS256\) or a P-256 EC key \(ES256\)$/);
    expect(problemReal(['--public-key', 'p384.pem'])).toMatch(/holds an ec key on curve secp384r1: use an RSA key/);
  });

  it('a path in the config file is relative to the file’s folder', () => {
    const sub = join(dir, 'conf');
    mkdirSync(join(sub, 'keys'), { recursive: true });
    writeFileSync(join(sub, 'keys', 'jwt.pem'), files.rsa);
    writeFileSync(join(sub, 'sb.json'), JSON.stringify({ publicKey: 'keys/jwt.pem' }));
    expect(loadReal(['--config', 'conf/sb.json']).publicKey).toBe(files.rsa);
    writeFileSync(join(sub, 'bad.json'), JSON.stringify({ publicKey: 'nope.pem' }));
    expect(problemReal(['--config', 'conf/bad.json'])).toBe(
      `cannot read the public key file ${join(sub, 'nope.pem')} (from "publicKey" in config file ${join(sub, 'bad.json')}): no such file`,
    );
  });
});

describe('config file', () => {
  it('an unreadable file is an error naming the path and the source', () => {
    expect(problem(['--insecure', '--config', 'nope.json'])).toBe('cannot read the config file /app/nope.json (from --config): no such file');
    expect(problem(['--insecure'], { env: { SWITCHBOARD_CONFIG: '/etc/sb.json' } })).toBe(
      'cannot read the config file /etc/sb.json (from SWITCHBOARD_CONFIG): no such file',
    );
  });

  it('invalid JSON is an error on one line, with the position when known', () => {
    expect(fileProblem('{"port": 80,\n "host": }')).toMatch(/^config file \/app\/sb\.json is not valid JSON \(.+\): fix it or point --config elsewhere$/);
    expect(fileProblem('{\n  "port": 80,\n')).toMatch(/is not valid JSON \(.*(at line \d+, column \d+|end of JSON input).*\)/);
    expect(fileProblem('')).toMatch(/is not valid JSON \(Unexpected end of JSON input\)/);
  });

  it('a byte order mark is ignored', () => {
    expect(withFile('\uFEFF{"port": 81}').port).toBe(81);
  });

  it('the top level must be an object', () => {
    expect(fileProblem('[1]')).toBe('config file /app/sb.json must hold a JSON object ({…}), got an array');
  });

  it('unknown keys are errors naming the key, at every level, with a suggestion', () => {
    expect(fileProblem({ prot: 80 })).toBe(
      'unknown key "prot" in config file /app/sb.json (did you mean "port"?): remove it or fix its name (see docs/configuration.md)',
    );
    expect(fileProblem({ maxFrameBytes: 1 })).toMatch(/^unknown key "maxFrameBytes" in config file/);
    expect(fileProblem({ limits: { maxFrameByte: 1 } })).toMatch(/^unknown key "limits.maxFrameByte" in config file \/app\/sb.json \(did you mean "limits.maxFrameBytes"\?\)/);
    expect(fileProblem({ namespaces: { chat: { presense: true } } })).toMatch(/^unknown key "namespaces.chat.presense" .*\(did you mean "namespaces.chat.presence"\?\)/);
    expect(fileProblem({ namespaces: { chat: { history: { size: 1, tll: 2 } } } })).toMatch(/^unknown key "namespaces.chat.history.tll" .*\(did you mean "namespaces.chat.history.ttl"\?\)/);
    expect(fileProblem({ defaultNamespace: { histroy: {} } })).toMatch(/^unknown key "defaultNamespace.histroy"/);
    expect(fileProblem({ config: 'other.json' })).toMatch(/^unknown key "config"/);
    expect(fileProblem('{"__proto__": {"port": 1}}')).toMatch(/^unknown key "__proto__"/);
  });

  it('type errors name the key and the expected type', () => {
    const where = 'in config file /app/sb.json';
    expect(fileProblem({ port: '80' })).toBe(`"port" ${where} must be a whole number from 0 to 65535, got "80" (a string)`);
    expect(fileProblem({ port: 80.5 })).toBe(`"port" ${where} must be a whole number from 0 to 65535, got 80.5`);
    expect(fileProblem({ limits: { maxBodyBytes: 0 } })).toBe(`"limits.maxBodyBytes" ${where} must be a whole number of at least 1, got 0`);
    expect(fileProblem({ insecure: 'yes' }, [])).toBe(`"insecure" ${where} must be true or false, got "yes" (a string)`);
    expect(fileProblem({ trustProxy: 1 })).toBe(`"trustProxy" ${where} must be true or false, got 1`);
    expect(fileProblem({ host: null })).toBe(`"host" ${where} must be a string, got null`);
    expect(fileProblem({ routing: 3 })).toBe(`"routing" ${where} must be one of interest, broadcast, registry, hashring, got 3`);
    expect(fileProblem({ publicKey: ['a'] })).toBe(`"publicKey" ${where} must be a file path (a string), got an array`);
    expect(fileProblem({ apiKeys: ['a', ''] })).toBe(`"apiKeys" ${where} must be an array of non-empty strings, got an array`);
    expect(fileProblem({ limits: [] })).toBe(`"limits" ${where} must be an object, got an array`);
    expect(fileProblem({ namespaces: [] })).toBe(`"namespaces" ${where} must be an object of name → options, got an array`);
    expect(fileProblem({ namespaces: { chat: true } })).toBe(`"namespaces.chat" ${where} must be an object, got true`);
    expect(fileProblem({ namespaces: { chat: { history: 50 } } })).toBe(
      `"namespaces.chat.history" ${where} must be an object like {"size": 100, "ttl": 300}, got 50`,
    );
    expect(fileProblem({ namespaces: { chat: { presence: 'no' } } })).toBe(`"namespaces.chat.presence" ${where} must be true or false, got "no" (a string)`);
    expect(fileProblem({ namespaces: { chat: { history: { size: -1 } } } })).toBe(
      `"namespaces.chat.history.size" ${where} must be a whole number from 0 to 100000, got -1`,
    );
    expect(fileProblem({ namespaces: { chat: { history: { ttl: 0 } } } })).toBe(
      `"namespaces.chat.history.ttl" ${where} must be a whole number from 1 to 2592000, got 0`,
    );
  });

  it('checks values like flags do (broker form, node id, availability)', () => {
    expect(fileProblem({ broker: 'http://x' })).toMatch(/^"broker" in config file \/app\/sb.json: "http:\/\/x" has an unknown scheme http: use memory/);
    expect(fileProblem({ broker: 'amqp://h' })).toMatch(/^"broker" in config file \/app\/sb.json: the RabbitMQ broker keeps history/);
    expect(fileProblem({ workers: 0 })).toMatch(/^"workers" in config file \/app\/sb.json must be a whole number from 1 to 1024, got 0/);
    expect(fileProblem({ workers: 4, routing: 'hashring', hashringRedirect: true, broker: 'redis://h' })).toMatch(
      /^"hashringRedirect" in config file \/app\/sb.json needs every node at a URL of its own/,
    );
  });

  it('a broker in the file that a flag overrides is not checked for availability', () => {
    expect(withFile({ broker: 'amqp://h' }, ['--insecure', '--broker', 'memory']).broker).toBe('memory');
  });

  it('an empty file object gives the defaults; apiKeys may be empty', () => {
    expect(withFile({ apiKeys: [] }).apiKeys).toEqual([]);
  });
});

describe('namespaces', () => {
  it('map history, presence, publish and private to NamespaceOptions', () => {
    const o = withFile({ namespaces: { chat: { history: { size: 50, ttl: 60 }, presence: true, publish: false, private: true } } });
    expect(o.namespaces.chat).toEqual({ historySize: 50, historyTtl: 60, presence: true, publish: false, private: true });
  });

  it('map subscribeHook, publishHook and joinLeave, which are off unless set, and refuse non-booleans', () => {
    // A namespace that asks a hook needs the hook's URL (see channel-hook-config.test.ts).
    const hooks = ['--subscribe-hook', 'http://127.0.0.1:1/s', '--publish-hook', 'http://127.0.0.1:1/p', '--hook-secret', 'k'];
    const o = withFile({ namespaces: { room: { subscribeHook: true, publishHook: true, joinLeave: true }, feed: { joinLeave: false } } }, ['--insecure', ...hooks]);
    expect(o.namespaces.room).toEqual({ ...DEFAULT_NAMESPACE, subscribeHook: true, publishHook: true, joinLeave: true });
    expect(o.namespaces.feed).toEqual({ ...DEFAULT_NAMESPACE, joinLeave: false });
    expect(DEFAULT_NAMESPACE).not.toHaveProperty('publishHook');
    expect(() => withFile({ namespaces: { room: { publishHook: 'yes' } } })).toThrow(/namespaces\.room\.publishHook.* must be true or false/);
  });

  it('missing fields take DEFAULT_NAMESPACE’s values', () => {
    const o = withFile({ namespaces: { feed: { publish: false }, logs: { history: { size: 0 } }, room: {} } });
    expect(o.namespaces.feed).toEqual({ ...DEFAULT_NAMESPACE, publish: false });
    expect(o.namespaces.logs).toEqual({ ...DEFAULT_NAMESPACE, historySize: 0 });
    expect(o.namespaces.room).toEqual(DEFAULT_NAMESPACE);
  });

  it('for user (personal channels) missing fields take DEFAULT_PERSONAL_NAMESPACE’s values', () => {
    expect(withFile({ namespaces: { user: { history: { ttl: 3600 } } } }).namespaces.user).toEqual({ ...DEFAULT_PERSONAL_NAMESPACE, historyTtl: 3600 });
    expect(withFile({}).namespaces.user).toEqual(DEFAULT_PERSONAL_NAMESPACE);
  });

  it('defaultNamespace configures channels without a namespace', () => {
    const o = withFile({ defaultNamespace: { presence: false, history: { size: 10 } } });
    expect(o.defaultNamespace).toEqual({ ...DEFAULT_NAMESPACE, presence: false, historySize: 10 });
  });

  it('names are 1–64 characters of A-Za-z0-9_-.@=,', () => {
    const good = ['a', 'chat-room_1.x@y=z,w', 'x'.repeat(64)];
    const o = withFile({ namespaces: Object.fromEntries(good.map((n) => [n, {}])) });
    for (const name of good) expect(o.namespaces[name]).toEqual(DEFAULT_NAMESPACE);
    for (const bad of ['', 'a b', 'a:b', 'x'.repeat(65), 'é']) {
      expect(fileProblem({ namespaces: { [bad]: {} } })).toBe(
        `namespace name ${JSON.stringify(bad)} in config file /app/sb.json is invalid: use 1–64 characters of A-Za-z0-9_-.@=, (channels without ":" use "defaultNamespace")`,
      );
    }
  });

  it('a namespace called __proto__ stays a namespace', () => {
    const o = withFile('{"insecure": true, "namespaces": {"__proto__": {"publish": false}}}', []);
    expect(Object.hasOwn(o.namespaces, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(o.namespaces)).toBe(Object.prototype);
  });
});

describe('help and docs', () => {
  const docs = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

  it('--help lists every flag with its default', () => {
    const help = helpText();
    for (const key of SETTING_KEYS) expect(help).toContain(`--${specOf(key).flag}`);
    expect(help).toContain('--config <file>');
    expect(help).toMatch(/--port <port> +TCP port to listen on \(0 picks a free one\) \[8080\]/);
    expect(help).toMatch(/--max-buffered-bytes <n> .*\[4194304\]/);
    expect(help).toMatch(/--host <address> +address to listen on \(127\.0\.0\.1 under --insecure unless given\) \[0\.0\.0\.0\]/);
  });

  it('docs/configuration.md names every flag, variable and config key', () => {
    for (const key of SETTING_KEYS) {
      const flag = specOf(key).flag;
      expect(docs).toContain(`--${flag}`);
      expect(docs).toContain(envName(flag));
      expect(docs).toContain(`\`${fileKey(key).replace(/^limits\./, '')}\``);
    }
    expect(docs).toContain('SWITCHBOARD_CONFIG');
  });
});

describe('describeReadError', () => {
  it('turns fs codes into words, and anything else into one line', () => {
    expect(describeReadError(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('permission denied');
    expect(describeReadError(new Error('odd\n  failure'))).toBe('odd failure');
  });
});
