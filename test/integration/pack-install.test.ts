/**
 * The packages as a user installs them: `scripts/pack.js` packs the gateway
 * (`switchboard`), the client (`switchboard-client`) and the server SDK
 * (`switchboard-server-sdk`) from the built tree; a scratch project in the
 * system's temporary folder, outside the repository, installs the three
 * tarballs with npm; then from there the `switchboard` command starts a node,
 * the installed client subscribes and the installed server SDK publishes to
 * it. Also checks what each tarball holds: no tests, benchmarks or sources,
 * and a client with no dependency but @msgpack/msgpack and no Node import.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { waitReady } from '../helpers/node-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const run = promisify(execFile);
const OUT = mkdtempSync(join(tmpdir(), 'switchboard-tarballs-'));
const PROJECT = mkdtempSync(join(tmpdir(), 'switchboard-scratch-'));
const children = new Set<ChildProcess>();

/** Where each package's tarball went, by package name. */
const tarballs: Record<string, string> = {};

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}

/**
 * The environment without what the test runner's npm and the repository set
 * (`npm_*` would point npm back at the repository, `SWITCHBOARD_*` would
 * configure the node).
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(npm_|SWITCHBOARD_)/i.test(name)) env[name] = value;
  }
  return { ...env, NO_UPDATE_NOTIFIER: '1' };
}

/** Every file under `dir`, relative to it, with `/` separators. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => statSync(join(dir, file)).isFile())
    .map((file) => file.split('\\').join('/'));
}

/** The module specifiers of the import and export statements of a compiled file (doc comments left out). */
function importsOf(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'([^']+)'/gm), ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? '');
}

function installed(name: string): string {
  return join(PROJECT, 'node_modules', name);
}

function packageJson(name: string): PackageJson {
  return JSON.parse(readFileSync(join(installed(name), 'package.json'), 'utf8')) as PackageJson;
}

async function entries(tarball: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', tarball], { timeout: 30_000, maxBuffer: 16 << 20 });
  return stdout.split('\n').filter((line) => line !== '');
}

beforeAll(async () => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'scripts', 'pack.js'), OUT], {
    cwd: ROOT,
    env: cleanEnv(),
    timeout: 120_000,
    maxBuffer: 16 << 20,
  });
  for (const line of stdout.split('\n').filter((l) => l.endsWith('.tgz'))) {
    const name = /([^/\\]+)-\d+\.\d+\.\d+[^/\\]*\.tgz$/.exec(line)?.[1];
    if (name !== undefined) tarballs[name] = line;
  }
  writeFileSync(join(PROJECT, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true, type: 'module' }));
  // Dependencies come from npm's cache when it has them, else from the registry.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...Object.values(tarballs)], {
    cwd: PROJECT,
    env: cleanEnv(),
    timeout: 150_000,
    maxBuffer: 16 << 20,
  });
}, 300_000);

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(OUT, { recursive: true, force: true });
  rmSync(PROJECT, { recursive: true, force: true });
});

describe('the tarballs', () => {
  it('are the gateway, the client and the server SDK, at the repository\'s version', () => {
    expect(Object.keys(tarballs).sort()).toEqual(['switchboard', 'switchboard-client', 'switchboard-server-sdk']);
    for (const name of Object.keys(tarballs)) expect(packageJson(name).version).toBe(VERSION);
  });

  it('hold no tests, benchmarks or TypeScript sources; the gateway holds its build, command and pages', async () => {
    for (const tarball of Object.values(tarballs)) {
      const files = await entries(tarball);
      expect(files.filter((f) => /^package\/(test|bench|src|examples|\.ci)\//.test(f)), tarball).toEqual([]);
    }
    const gateway = await entries(tarballs['switchboard'] ?? '');
    for (const file of ['bin/switchboard.js', 'dist/server/cli.js', 'dist/client/index.js', 'dist/web/switchboard.js', 'web/index.html']) {
      expect(gateway).toContain(`package/${file}`);
    }
  });

  it('the client has no dependency but @msgpack/msgpack, no scripts, and imports nothing from Node', () => {
    const pkg = packageJson('switchboard-client');
    expect(Object.keys(pkg.dependencies ?? {})).toEqual(['@msgpack/msgpack']);
    expect(pkg.devDependencies).toBeUndefined();
    expect(pkg.scripts).toBeUndefined();
    const js = filesUnder(installed('switchboard-client')).filter((f) => f.endsWith('.js'));
    expect(js).toContain('client/index.js');
    for (const file of js) {
      for (const specifier of importsOf(readFileSync(join(installed('switchboard-client'), file), 'utf8'))) {
        expect(specifier.startsWith('.') || specifier === '@msgpack/msgpack', `${file} imports ${specifier}`).toBe(true);
      }
    }
    expect(js.filter((f) => !/^(client|protocol|shared)\//.test(f))).toEqual([]);
  });

  it('the server SDK has no dependencies and imports no other package', () => {
    const pkg = packageJson('switchboard-server-sdk');
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(pkg.scripts).toBeUndefined();
    for (const file of filesUnder(installed('switchboard-server-sdk')).filter((f) => f.endsWith('.js'))) {
      for (const specifier of importsOf(readFileSync(join(installed('switchboard-server-sdk'), file), 'utf8'))) {
        expect(specifier.startsWith('.') || specifier.startsWith('node:'), `${file} imports ${specifier}`).toBe(true);
      }
    }
  });

  it('installing the gateway did not build it (no scripts, no sources, no dev dependencies needed)', () => {
    const pkg = packageJson('switchboard');
    expect(pkg.scripts).toBeUndefined();
    expect(pkg.devDependencies).toBeUndefined();
    const files = filesUnder(installed('switchboard'));
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
    expect(filesUnder(join(PROJECT, 'node_modules')).some((f) => f.startsWith('typescript/'))).toBe(false);
  });
});

describe('from the scratch project', () => {
  it('the installed packages\' types resolve and check for a TypeScript user (NodeNext)', async () => {
    writeFileSync(
      join(PROJECT, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: [], strict: true, noEmit: true },
        files: ['types-check.ts'],
      }),
    );
    writeFileSync(join(PROJECT, 'types-check.ts'), TYPES_CHECK);
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', PROJECT], { cwd: PROJECT, env: cleanEnv(), timeout: 60_000 }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err) }),
    );
    expect(result.stdout).toBe('');
  }, 90_000);

  it('switchboard --version runs from node_modules/.bin', async () => {
    const { stdout } = await run(process.execPath, [join(PROJECT, 'node_modules', '.bin', 'switchboard'), '--version'], {
      cwd: PROJECT,
      env: cleanEnv(),
      timeout: 20_000,
    });
    expect(stdout).toBe(`${VERSION}\n`);
  });

  it('the command starts a node; the installed client gets what the installed server SDK publishes', async () => {
    const port = await freePort();
    const node = spawn(process.execPath, [join(PROJECT, 'node_modules', '.bin', 'switchboard'), 'start', '--insecure', '--port', String(port), '--log-level', 'warn'], {
      cwd: PROJECT,
      env: cleanEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.add(node);
    let stderr = '';
    node.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    try {
      await waitReady(port, node, 30_000).catch((err: unknown) => {
        throw new Error(`the installed switchboard did not become ready: ${stderr}`, { cause: err });
      });
      // The demo page and its bundle come from the installed package too.
      expect((await fetch(`http://127.0.0.1:${port}/switchboard.js`)).status).toBe(200);

      const script = join(PROJECT, 'round-trip.mjs');
      writeFileSync(script, ROUND_TRIP);
      const { stdout } = await run(process.execPath, [script, String(port)], { cwd: PROJECT, env: cleanEnv(), timeout: 30_000 });
      const result = JSON.parse(stdout) as Record<string, unknown>;
      expect(result).toMatchObject({
        channel: 'news',
        data: { text: 'from the server SDK' },
        same: true,
        subpaths: { client: 'function', serverSdk: 'function', protocol: 'object' },
      });
    } finally {
      node.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        if (node.exitCode !== null || node.signalCode !== null) return resolve();
        const timer = setTimeout(() => node.kill('SIGKILL'), 10_000);
        node.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      children.delete(node);
    }
    expect(relative(ROOT, PROJECT).startsWith('..')).toBe(true);
  }, 90_000);
});

/**
 * Run in the scratch project with the node's port: subscribes with the
 * installed client (over `ws`, which the gateway brings), publishes with the
 * installed server SDK, and prints what arrived; also imports the gateway
 * package's subpath exports.
 */
const ROUND_TRIP = `
import WebSocket from 'ws';
import { SwitchboardClient } from 'switchboard-client';
import { SwitchboardApi } from 'switchboard-server-sdk';

const port = process.argv[2];
const client = new SwitchboardClient({ url: 'ws://127.0.0.1:' + port + '/ws', WebSocket, params: { user: 'alice' } });
const arrived = new Promise((resolve) => client.on('message', resolve));
const news = client.subscribe('news');
client.connect();
await news.ready();
const api = new SwitchboardApi({ baseUrl: 'http://127.0.0.1:' + port });
const published = await api.publish('news', { text: 'from the server SDK' });
const message = await arrived;
const [c, s, p] = await Promise.all(['switchboard/client', 'switchboard/server-sdk', 'switchboard/protocol'].map((name) => import(name)));
client.disconnect();
console.log(JSON.stringify({
  channel: message.channel,
  data: message.data,
  same: message.offset === published.offset,
  subpaths: { client: typeof c.SwitchboardClient, serverSdk: typeof s.SwitchboardApi, protocol: typeof p.ErrorCode },
}));
process.exit(0);
`;

/** Uses the installed packages' types: wrong or missing declarations fail to compile. */
const TYPES_CHECK = `
import { SwitchboardClient, type ClientOptions, type Publication } from 'switchboard-client';
import { SwitchboardApi, SwitchboardApiError, ErrorCode } from 'switchboard-server-sdk';
import { SwitchboardClient as FromGateway } from 'switchboard/client';
import type { ServerFrame } from 'switchboard/protocol';

const options: ClientOptions = { url: 'ws://127.0.0.1:8080/ws', params: { user: 'alice' } };
const client: SwitchboardClient = new SwitchboardClient(options);
client.on('message', (m: Publication) => m.channel.length);
const api = new SwitchboardApi({ baseUrl: 'http://127.0.0.1:8080' });
const published: Promise<{ offset?: number; idempotencyKey: string }> = api.publish('news', { text: 'hi' });
const code: string = ErrorCode.BadRequest;
const frame: ServerFrame['type'] = 'welcome';
export { client, published, code, frame, FromGateway, SwitchboardApiError };
`;
