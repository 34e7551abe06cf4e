/**
 * Each broker's client library is loaded only when its URL scheme is used:
 * a memory node, and every module of the server and the cluster, load none
 * of ioredis, amqplib and the NATS packages. A child process records every
 * module it resolves through a resolve hook (`module.register`, Node 20.6+);
 * the last case proves the hook sees the libraries when a scheme asks for them.
 * Runs against dist/ (`npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CLIENT_LIBRARY = /\/node_modules\/(ioredis|amqplib|@nats-io\/[^/]+)\//;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-loading-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    [
      "import { appendFileSync } from 'node:fs';",
      'let log;',
      'export function initialize(data) { log = data.log; }',
      'export async function resolve(specifier, context, next) {',
      '  const result = await next(specifier, context);',
      "  appendFileSync(log, result.url + '\\n');",
      '  return result;',
      '}',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    [
      "import { register } from 'node:module';",
      `register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)}, { data: { log: process.env.SB_LOADED_LOG } });`,
    ].join('\n'),
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The client libraries the script's statements load, by package name. */
function librariesLoadedBy(name: string, statements: string[]): string[] {
  const script = [...statements, 'process.exit(0);'].join('\n');
  const log = join(dir, `${name}.log`);
  writeFileSync(log, '');
  const run = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, SB_LOADED_LOG: log },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  // The hook saw the modules the script imported.
  expect(urls.some((u) => u.includes('/dist/'))).toBe(true);
  return [...new Set(urls.map((u) => CLIENT_LIBRARY.exec(u)?.[1]).filter((m): m is string => m !== undefined))].sort();
}

const dist = (path: string): string => JSON.stringify(pathToFileURL(join(ROOT, 'dist', path)).href);

describe('broker client libraries', () => {
  it('a memory node loads none of them', () => {
    const node = [
      `const { startNode } = await import(${dist('server/index.js')});`,
      "const node = await startNode({ broker: 'memory', port: 0, host: '127.0.0.1', logLevel: 'silent' });",
      'await node.close();',
    ];
    expect(librariesLoadedBy('memory-node', node)).toEqual([]);
  });

  it('no module of the server, the cluster or the broker selection loads one', () => {
    const modules = ['server', 'cluster'].flatMap((folder) =>
      readdirSync(join(ROOT, 'dist', folder), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.js'))
        .map((f) => `${folder}/${f}`),
    );
    modules.push('brokers/index.js', 'brokers/redis/url.js', 'brokers/nats/url.js', 'brokers/amqp/url.js', 'brokers/ipc/ipc-broker.js', 'brokers/ipc/hub.js');
    expect(modules).toContain('server/cli.js');
    expect(librariesLoadedBy('modules', modules.map((m) => `await import(${dist(m)});`))).toEqual([]);
  });

  it('each is loaded once its URL scheme is asked for', () => {
    const specs = ['redis://127.0.0.1:1', 'nats://127.0.0.1:1', 'amqp://127.0.0.1:1?store=redis://127.0.0.1:1'];
    const loaded = librariesLoadedBy('schemes', [
      `const { createBroker } = await import(${dist('brokers/index.js')});`,
      ...specs.map((spec) => `await createBroker(${JSON.stringify(spec)});`),
    ]);
    expect(loaded).toContain('ioredis');
    expect(loaded).toContain('amqplib');
    expect(loaded.some((m) => m.startsWith('@nats-io/'))).toBe(true);
  });
});
