/**
 * The webhook settings: read from flags and the environment into
 * `NodeOptions` with their defaults, and refused in one line when the
 * secret is missing or the broker cannot log events; and the settings of
 * the backend hooks, which sign like the webhook.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/server/config/errors.js';
import { loadConfig } from '../../src/server/config/load.js';

const URL = 'http://127.0.0.1:3000/events';
const HOOK = 'http://127.0.0.1:3000/rpc';

function load(argv: string[], env: Record<string, string> = {}) {
  return loadConfig({ argv: ['--insecure', ...argv], env, readFile: () => '' }).options;
}

function problem(argv: string[]): string {
  try {
    load(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.message).not.toMatch(/\n/);
    return err.message;
  }
  throw new Error('expected a ConfigError');
}

describe('webhook settings', () => {
  it('default to no webhook, 100 events a request, 5 s and 100000 pending', () => {
    const o = load([]);
    expect([o.webhook, o.webhookSecret, o.webhookBatch, o.webhookTimeout, o.webhookMaxPending]).toEqual([undefined, undefined, 100, 5000, 100_000]);
  });

  it('are read from flags and the environment', () => {
    const o = load(['--webhook', URL, '--webhook-batch', '7', '--webhook-timeout', '250', '--webhook-max-pending', '64'], { SWITCHBOARD_WEBHOOK_SECRET: 'k' });
    expect([o.webhook, o.webhookSecret, o.webhookBatch, o.webhookTimeout, o.webhookMaxPending]).toEqual([URL, 'k', 7, 250, 64]);
  });

  it('refuse a webhook without its secret, and a secret without a webhook', () => {
    expect(problem(['--webhook', URL])).toBe('--webhook needs --webhook-secret (SWITCHBOARD_WEBHOOK_SECRET), the key that signs each request');
    expect(problem(['--webhook-secret', 'k'])).toBe('--webhook-secret is given without --webhook');
  });

  it('refuse a URL that is not http or https', () => {
    expect(problem(['--webhook', 'ftp://x/events', '--webhook-secret', 'k'])).toMatch(/^--webhook: .* must be an http:\/\/ or https:\/\/ URL/);
  });

  it.each([
    [['--broker', 'nats://127.0.0.1:4222'], 'over the NATS broker'],
    [['--broker', 'redis+cluster://127.0.0.1:7000'], 'over a Redis Cluster'],
    [['--broker', 'amqp://127.0.0.1:5672?store=redis%2Bcluster://127.0.0.1:7000'], 'over a Redis Cluster'],
    [['--workers', '2'], 'with --workers above 1'],
  ])('refuse a store that cannot log events: %j', (argv, why) => {
    expect(problem([...argv, '--webhook', URL, '--webhook-secret', 'k'])).toContain(`--webhook: events are not available ${why}`);
  });

  it('accept memory, a standalone Redis and RabbitMQ over a standalone Redis', () => {
    for (const broker of ['memory', 'redis://127.0.0.1:6379', 'amqp://127.0.0.1:5672?store=redis://127.0.0.1:6379']) {
      expect(load(['--broker', broker, '--webhook', URL, '--webhook-secret', 'k']).webhook).toBe(URL);
    }
  });
});

describe('hook settings', () => {
  it('default to no rpc hook, 3000 ms and 256 in flight', () => {
    const o = load([]);
    expect([o.rpcHook, o.hookSecret, o.hookTimeout, o.hookMaxInFlight]).toEqual([undefined, undefined, 3000, 256]);
  });

  it('are read from flags and the environment', () => {
    const o = load(['--rpc-hook', HOOK, '--hook-timeout', '250', '--hook-max-in-flight', '8'], { SWITCHBOARD_HOOK_SECRET: 'k' });
    expect([o.rpcHook, o.hookSecret, o.hookTimeout, o.hookMaxInFlight]).toEqual([HOOK, 'k', 250, 8]);
  });

  it('take the webhook secret when no hook secret is given', () => {
    const o = load(['--rpc-hook', HOOK, '--webhook', 'http://127.0.0.1:3000/events', '--webhook-secret', 'w']);
    expect([o.hookSecret, o.webhookSecret]).toEqual([undefined, 'w']);
  });

  it('refuse an rpc hook without a key, a hook secret without a hook, and a URL that is not http', () => {
    expect(problem(['--rpc-hook', HOOK])).toBe(
      '--rpc-hook needs --hook-secret (SWITCHBOARD_HOOK_SECRET), the key that signs each request (or --webhook with its --webhook-secret)',
    );
    expect(problem(['--hook-secret', 'k'])).toBe('--hook-secret is given without a hook URL (--rpc-hook, --connect-hook, --subscribe-hook, --publish-hook)');
    expect(problem(['--rpc-hook', 'ws://x/rpc', '--hook-secret', 'k'])).toMatch(/^--rpc-hook: .* must be an http:\/\/ or https:\/\/ URL/);
    expect(problem(['--rpc-hook', HOOK, '--hook-secret', 'k', '--hook-max-in-flight', '0'])).toMatch(/--hook-max-in-flight/);
  });

  it('read the connect and refresh hooks from flags and the environment; each needs a key, the refresh hook the connect hook', () => {
    const o = load(['--connect-hook', 'http://127.0.0.1:3000/connect', '--hook-secret', 'k'], { SWITCHBOARD_REFRESH_HOOK: 'http://127.0.0.1:3000/refresh' });
    expect([o.connectHook, o.refreshHook, o.rpcHook]).toEqual(['http://127.0.0.1:3000/connect', 'http://127.0.0.1:3000/refresh', undefined]);
    expect(problem(['--connect-hook', HOOK])).toBe(
      '--connect-hook needs --hook-secret (SWITCHBOARD_HOOK_SECRET), the key that signs each request (or --webhook with its --webhook-secret)',
    );
    expect(problem(['--refresh-hook', HOOK, '--hook-secret', 'k'])).toBe('--refresh-hook is given without --connect-hook: it refreshes the sessions that hook accepts');
    expect(problem(['--connect-hook', 'ws://x/connect', '--hook-secret', 'k'])).toMatch(/^--connect-hook: .* must be an http:\/\/ or https:\/\/ URL/);
  });

  it('a connect hook is authentication enough: a node with it and no key for tokens starts', () => {
    const argv = ['--connect-hook', 'http://127.0.0.1:3000/connect', '--hook-secret', 'k'];
    expect(loadConfig({ argv, env: {}, readFile: () => '' }).options.connectHook).toBe('http://127.0.0.1:3000/connect');
    expect(() => loadConfig({ argv: ['--hook-secret', 'k', '--rpc-hook', HOOK], env: {}, readFile: () => '' })).toThrow(/no authentication configured/);
  });
});
