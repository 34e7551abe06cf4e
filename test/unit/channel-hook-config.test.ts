/**
 * The settings of the subscribe and publish hooks: read from flags, the
 * environment and the config file, signed with the hook key, and a
 * namespace that asks a hook whose URL is not set refused in one line,
 * by the config loader and by a node started in code.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/server/config/errors.js';
import { loadConfig } from '../../src/server/config/load.js';
import { startNode } from '../../src/server/node.js';

const SUB = 'http://127.0.0.1:3000/subscribe';
const PUB = 'http://127.0.0.1:3000/publish';

function load(argv: string[], env: Record<string, string> = {}, file?: object) {
  const files: Record<string, string> = file ? { '/app/sb.json': JSON.stringify(file) } : {};
  const read = (path: string): string => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return text;
  };
  return loadConfig({ argv: ['--insecure', ...argv, ...(file ? ['--config', 'sb.json'] : [])], env, readFile: read, cwd: '/app' }).options;
}

function problem(argv: string[], env: Record<string, string> = {}, file?: object): string {
  try {
    load(argv, env, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.message).not.toMatch(/\n/);
    return err.message;
  }
  throw new Error('expected a ConfigError');
}

describe('subscribe and publish hook settings', () => {
  it('default to none', () => {
    const o = load([]);
    expect([o.subscribeHook, o.publishHook]).toEqual([undefined, undefined]);
  });

  it('are read from flags, the environment and the config file', () => {
    expect(load(['--subscribe-hook', SUB, '--publish-hook', PUB, '--hook-secret', 'k'])).toMatchObject({ subscribeHook: SUB, publishHook: PUB });
    const env = { SWITCHBOARD_SUBSCRIBE_HOOK: SUB, SWITCHBOARD_PUBLISH_HOOK: PUB, SWITCHBOARD_HOOK_SECRET: 'k' };
    expect(load([], env)).toMatchObject({ subscribeHook: SUB, publishHook: PUB });
    expect(load([], { SWITCHBOARD_HOOK_SECRET: 'k' }, { subscribeHook: SUB, publishHook: PUB })).toMatchObject({ subscribeHook: SUB, publishHook: PUB });
  });

  it('need a key that signs them, and an http URL', () => {
    expect(problem(['--publish-hook', PUB])).toBe(
      '--publish-hook needs --hook-secret (SWITCHBOARD_HOOK_SECRET), the key that signs each request (or --webhook with its --webhook-secret)',
    );
    expect(problem([], { SWITCHBOARD_SUBSCRIBE_HOOK: SUB })).toMatch(/^SWITCHBOARD_SUBSCRIBE_HOOK needs --hook-secret/);
    expect(load(['--subscribe-hook', SUB, '--webhook', 'http://127.0.0.1:3000/events', '--webhook-secret', 'w']).subscribeHook).toBe(SUB);
    expect(problem(['--subscribe-hook', 'ws://x/s', '--hook-secret', 'k'])).toMatch(/^--subscribe-hook: .* must be an http:\/\/ or https:\/\/ URL/);
  });

  it('are required by a namespace that asks them: the message names the namespace and the setting', () => {
    const secret = ['--hook-secret', 'k'];
    expect(problem([], {}, { namespaces: { chat: { subscribeHook: true } } })).toBe(
      'namespace "chat" in config file /app/sb.json has subscribeHook: true, but no --subscribe-hook is set: ' +
        'give the URL the node asks (--subscribe-hook, SWITCHBOARD_SUBSCRIBE_HOOK or "subscribeHook" at the top of the config file)',
    );
    expect(problem(['--subscribe-hook', SUB, ...secret], {}, { namespaces: { chat: { subscribeHook: true }, feed: { publishHook: true } } })).toMatch(
      /^namespace "feed" in config file \/app\/sb.json has publishHook: true, but no --publish-hook is set/,
    );
    expect(problem(['--publish-hook', PUB, ...secret], {}, { defaultNamespace: { subscribeHook: true } })).toMatch(
      /^"defaultNamespace" in config file \/app\/sb.json has subscribeHook: true, but no --subscribe-hook/,
    );
    // Off, or with the URL: fine.
    expect(load(secret.concat(['--publish-hook', PUB]), {}, { namespaces: { chat: { subscribeHook: false, publishHook: true } } }).namespaces.chat).toMatchObject({
      publishHook: true,
    });
  });

  it('a node started in code refuses the same, before it listens', async () => {
    await expect(
      startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', namespaces: { chat: { historySize: 0, historyTtl: 1, presence: false, publish: true, private: false, publishHook: true } } }),
    ).rejects.toThrow(/namespace "chat" .*publishHook: true, but no --publish-hook is set/);
    await expect(startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', subscribeHook: SUB })).rejects.toThrow(/hook requests are always signed/);
  });
});
