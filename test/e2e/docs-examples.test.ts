/**
 * The docs' examples hold against the code: the server SDK snippet of
 * docs/server-sdk.md, taken from the Markdown, type-checks under the
 * project's strict settings and runs against a real node; every error
 * message that docs/configuration.md shows in its "Errors and exit codes"
 * table is what the CLI prints for a setting that is wrong that way.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testCa } from '../helpers/certs.js';
import { tempDir } from '../helpers/children.js';
import { prepareExample } from '../helpers/doc-example.js';
import { cleanEnv } from '../helpers/doc-shell.js';
import { markedBlock, readDoc, ROOT, section } from '../helpers/markdown.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';

const BIN = join(ROOT, 'bin', 'switchboard.js');
const KEY = 'docs-example-key';
const SECRET = 'docs-example-secret-of-32-characters!';
/** Inside the package, so that `switchboard/server-sdk` resolves to this repository's build (gitignored). */
const SCRATCH = join(ROOT, '.scratch');
const nodes: NodeProcess[] = [];
const scratchDirs: string[] = [];

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.kill()));
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `command args` to its end (SIGKILL after `ms`). */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, ms = 15_000): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('docs/server-sdk.md: the example', () => {
  it('type-checks, runs against a node, and publishes its keyed message once however often it runs', async () => {
    const node = await startNodeProcess('docs-sdk', ['--secret', SECRET, '--api-key', KEY]);
    nodes.push(node);
    mkdirSync(SCRATCH, { recursive: true });
    const dir = mkdtempSync(join(SCRATCH, 'docs-sdk-'));
    scratchDirs.push(dir);
    const { tsc, module } = await prepareExample(dir, 'example', markedBlock('docs/server-sdk.md', 'server-sdk').text);
    expect(tsc).toBe('');

    const env = cleanEnv({ SWITCHBOARD_API: node.url(), SWITCHBOARD_API_KEY: KEY });
    for (const time of [1, 2]) {
      const out = await run(process.execPath, [module], env);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toMatch(new RegExp(`^sent ${time} \\S+ false$`, 'm'));
      expect(out.stdout).toMatch(/^bad_request 400 /m);
    }
    const history = await fetch(node.url('/api/history/room.42'), { headers: { authorization: `Bearer ${KEY}` } });
    const { messages } = (await history.json()) as { messages: Array<{ data: unknown }> };
    expect(messages.map((m) => m.data)).toEqual([{ text: 'order shipped' }]);
  }, 90_000);
});

/** One way to get a setting wrong: the CLI's arguments and environment, and files to create first. */
interface Mistake {
  args: string[];
  env?: Record<string, string>;
  /** Files to write under the scratch root (`etc/switchboard.json` → `<root>/etc/switchboard.json`); a trailing `/` makes a folder. */
  files?: Record<string, string>;
  /** Make the scratch root's `etc/` unreadable to the CLI (as root: run without the capabilities that override permissions). */
  locked?: boolean;
}

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const PEM = { format: 'pem', type: 'pkcs8' } as const;
const PUB = { format: 'pem', type: 'spki' } as const;
const tlsCa = testCa();
const [tlsA, tlsB] = [tlsCa.issue('a'), tlsCa.issue('b')].map((f) => ({ cert: readFileSync(f.cert, 'utf8'), key: readFileSync(f.key, 'utf8') }));
const TLS_ARGS = ['--insecure', '--tls-cert', '@/etc/tls/node.crt', '--tls-key', '@/etc/tls/node.key'];

/** Each mistake the table shows a message for. `@` in an argument stands for the scratch root. */
const MISTAKES: Mistake[] = [
  { args: ['strat'] },
  { args: ['start', '--prot', '80'] },
  { args: ['start', '--port'] },
  { args: ['start', '80'] },
  { args: ['start', '--insecure=false'] },
  { args: ['start', '--port', '80a', '--insecure'] },
  { args: ['start', '--insecure'], env: { SWITCHBOARD_MAX_FRAME_BYTES: '0' } },
  { args: ['start'], env: { SWITCHBOARD_INSECURE: 'yes' } },
  { args: ['start', '--routing', 'random', '--insecure'] },
  { args: ['start', '--broker', 'http://h', '--insecure'] },
  { args: ['start', '--broker', 'nats://127.0.0.1:4222', '--routing', 'registry', '--insecure'] },
  { args: ['start', '--broker', 'amqp://127.0.0.1:5672', '--insecure'] },
  { args: ['start', '--hashring-redirect', '--insecure'] },
  { args: ['start', '--advertise-url', 'http://x:8080/ws', '--insecure'] },
  { args: ['start', '--workers', '4', '--routing', 'hashring', '--hashring-redirect', '--insecure'] },
  { args: ['start', '--node-id', 'a b', '--insecure'] },
  { args: ['start', '--insecure', '--webhook', 'http://127.0.0.1:9/events'] },
  { args: ['start', '--insecure', '--broker', 'nats://127.0.0.1:4222', '--webhook', 'http://127.0.0.1:9/events', '--webhook-secret', 'k'] },
  { args: ['start', '--insecure', '--broker', 'redis+cluster://127.0.0.1:7000', '--webhook', 'http://127.0.0.1:9/events', '--webhook-secret', 'k'] },
  { args: ['start', '--insecure', '--workers', '2', '--webhook', 'http://127.0.0.1:9/events', '--webhook-secret', 'k'] },
  { args: ['start'] },
  { args: ['start', '--insecure', '--secret', 'k'.repeat(32)] },
  { args: ['start', '--insecure', '--allowed-origins', 'example.com'] },
  { args: ['start', '--public-key', '@/etc/keys/jwt.pem'] },
  { args: ['start', '--public-key', '@/etc/keys/jwt.pem'], files: { 'etc/keys/jwt.pem': 'not a key\n' } },
  { args: ['start', '--public-key', '@/etc/keys/jwt.pem'], files: { 'etc/keys/jwt.pem': ec.privateKey.export(PEM).toString() } },
  { args: ['start', '--public-key', '@/etc/keys/jwt.pem'], files: { 'etc/keys/jwt.pem': ed.publicKey.export(PUB).toString() } },
  { args: ['start', '--insecure', '--tls-cert', '@/etc/tls/node.crt'] },
  { args: ['start', ...TLS_ARGS] },
  { args: ['start', ...TLS_ARGS], files: { 'etc/tls/node.crt': 'not a certificate\n', 'etc/tls/node.key': tlsA?.key ?? '' } },
  { args: ['start', ...TLS_ARGS], files: { 'etc/tls/node.crt': tlsA?.cert ?? '', 'etc/tls/node.key': tlsA?.cert ?? '' } },
  { args: ['start', ...TLS_ARGS], files: { 'etc/tls/node.crt': tlsA?.cert ?? '', 'etc/tls/node.key': tlsB?.key ?? '' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'] },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json/': '' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{}' }, locked: true },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{"limits": {"maxFrameByte": 1}}' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{"port": "80"}' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{"namespaces": {"a b": {}}}' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{"namespaces": {"chat": {"subscribeHook": true}}}' } },
  { args: ['start', '--insecure', '--config', '@/etc/switchboard.json'], files: { 'etc/switchboard.json': '{"defaultNamespace": {"publishHook": true}}' } },
];

const asRoot = process.getuid?.() === 0;
/** Runs a command as root but without the capabilities that let root read what file permissions refuse. */
const WITHOUT_DAC = ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search'];

/** Run the CLI on `mistake` in a scratch root of its own; its stderr with the root's path taken out, so paths read as in the doc. */
async function attempt(mistake: Mistake): Promise<Exit> {
  const root = tempDir('sb-doc-config-');
  for (const [path, content] of Object.entries(mistake.files ?? {})) {
    const abs = join(root, path);
    if (path.endsWith('/')) mkdirSync(abs, { recursive: true });
    else {
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
  }
  const args = mistake.args.map((a) => a.replace(/^@/, root));
  // Port 0 on the loopback: if the CLI were to accept a mistake, the node it starts takes nothing of anyone's.
  const env = cleanEnv({ SWITCHBOARD_PORT: '0', SWITCHBOARD_HOST: '127.0.0.1', ...mistake.env });
  let out: Exit;
  if (mistake.locked) chmodSync(join(root, 'etc'), 0o000);
  // Root reads anything: it runs the CLI without the capabilities that override file permissions.
  const [command, ...rest] = mistake.locked && asRoot ? [...WITHOUT_DAC, process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  out = await run(command as string, rest, env, 10_000);
  if (mistake.locked) chmodSync(join(root, 'etc'), 0o700);
  return { ...out, stderr: out.stderr.split(root).join('') };
}

/** The backticked examples of the message column of the "Errors and exit codes" table. */
function documentedMessages(): string[] {
  const text = section(readDoc('docs/configuration.md'), 'Errors and exit codes');
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^\|\s*problem\s*\|/.test(l));
  if (header < 0) throw new Error('docs/configuration.md: no "| problem | message |" table under "Errors and exit codes"');
  const end = lines.findIndex((l, i) => i > header && !l.startsWith('|'));
  const table = lines.slice(header + 2, end < 0 ? undefined : end);
  return table.flatMap((row) => {
    const message = row.split(' | ')[1] ?? '';
    return [...message.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
  });
}

/** Whether `line` shows `example`, where `…` in the example stands for any text. */
function shows(line: string, example: string): boolean {
  const pattern = example
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(pattern).test(line);
}

describe('docs/configuration.md: the error messages', () => {
  it('every example in the table is what the CLI prints, and every such mistake exits 2 with one line', async () => {
    const examples = documentedMessages();
    expect(examples.length).toBeGreaterThan(20);
    const lines: string[] = [];
    const wrong: string[] = [];
    for (let i = 0; i < MISTAKES.length; i += 4) {
      const batch = MISTAKES.slice(i, i + 4);
      const outs = await Promise.all(batch.map(attempt));
      outs.forEach((out, j) => {
        const said = out.stderr.trimEnd().split('\n');
        const what = `switchboard ${(batch[j] as Mistake).args.join(' ')}`;
        if (out.code !== 2 || said.length !== 1 || !said[0]?.startsWith('switchboard: ')) wrong.push(`${what}: exit ${out.code}, ${JSON.stringify(out.stderr)}`);
        lines.push(...said.map((l) => l.replace(/^switchboard: /, '')));
      });
    }
    expect(wrong).toEqual([]);
    expect(examples.filter((example) => !lines.some((line) => shows(line, example)))).toEqual([]);
  }, 120_000);

  it('the matcher takes … for any text and nothing else', () => {
    expect(shows('--broker: "http://h" has an unknown scheme http: use memory, rediss://x', 'unknown scheme http: use memory, …')).toBe(true);
    expect(shows('unknown command "strat": the commands are start and cluster', 'the command is start')).toBe(false);
  });
});
