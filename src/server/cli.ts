/**
 * The `switchboard` command: `start [flags]`, `cluster --nodes N [flags]`,
 * `outbox-schema <table | ingest URL>` (the SQL of a PostgreSQL outbox),
 * `--help`, `--version`.
 *
 * Exit codes: 0 after a drain or for help/version; 2 for a usage or
 * configuration problem (one line `switchboard: …` on stderr, no stack
 * trace); 1 when the node cannot start or its drain fails. SIGTERM and
 * SIGINT drain the node; a second signal exits at once. SIGHUP reloads the
 * TLS certificate and key (`--tls-cert`, `--tls-key`). With `--workers N`
 * the process is a primary that forks N such nodes (see workers/primary.ts).
 */
import nodeCluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { ConfigError, errorCode, oneLine } from './config/errors.js';
import { wantsHelp } from './config/flags.js';
import { loadConfig } from './config/load.js';
import { didYouMean } from './config/suggest.js';
import { helpText } from './config/usage.js';
import { schemesOf, type LogLevel, type NodeOptions } from './options.js';
import type { SwitchboardNode } from './node.js';

/** Exit code for a usage or configuration problem. */
export const EXIT_USAGE = 2;
/** Exit code when the node cannot start, or its drain fails. */
export const EXIT_FAILURE = 1;

/** Seconds the CLI waits past `drainTimeout` before it stops waiting for `drain()`. */
const DRAIN_GRACE = 5;
const COMMANDS = ['start', 'cluster', 'outbox-schema', 'help', 'version'];
const CHATTY_LEVELS: readonly LogLevel[] = ['info', 'debug', 'trace'];

/** Runs the command line (`argv` without `node` and the script). Exits the process when done, except while a node runs. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'cluster':
      return cluster(rest);
    case 'outbox-schema':
      return outboxSchemaCommand(rest);
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(helpText());
      return;
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${version()}\n`);
      return;
    case undefined:
      fail('missing command: run switchboard start [flags] (see switchboard --help)', EXIT_USAGE);
    default:
      if (command.startsWith('-')) fail(`expected a command before ${command}: write switchboard start ${command} …`, EXIT_USAGE);
      fail(`unknown command ${JSON.stringify(command)}${didYouMean(command, COMMANDS)}: the commands are start, cluster and outbox-schema (see switchboard --help)`, EXIT_USAGE);
  }
}

async function cluster(argv: readonly string[]): Promise<void> {
  const { clusterHelpText, planCluster, runCluster } = await import('./cluster-command.js');
  if (wantsHelp(argv)) {
    process.stdout.write(clusterHelpText());
    return;
  }
  let plan;
  try {
    plan = planCluster(argv, process.env, process.cwd());
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT_USAGE);
    throw err;
  }
  process.exit(await runCluster(plan, say));
}

/** Prints the migration of the outbox a `--ingest postgres://…` URL (or a bare table name) reads. */
async function outboxSchemaCommand(argv: readonly string[]): Promise<void> {
  const { parseIngest } = await import('./ingest/source.js');
  const { outboxSchema } = await import('./ingest/outbox-sql.js');
  const usage = 'usage: switchboard outbox-schema <table | postgres://…/<db>?table=<table>[&dead=<table>]>';
  if (wantsHelp(argv)) {
    process.stdout.write(`${usage}\nPrints the SQL that creates a PostgreSQL outbox for --ingest (docs/ingest.md).\n`);
    return;
  }
  const [arg, ...extra] = argv;
  if (arg === undefined || extra.length > 0) fail(usage, EXIT_USAGE);
  const parsed = parseIngest(arg.includes('://') ? arg : `postgres://localhost/db?table=${encodeURIComponent(arg)}`);
  if (!parsed.ok) fail(`outbox-schema: ${parsed.problem}`, EXIT_USAGE);
  if (parsed.value.kind !== 'postgres') fail('outbox-schema: give a table or a postgres:// URL', EXIT_USAGE);
  process.stdout.write(outboxSchema(parsed.value.table, parsed.value.dead));
}

async function start(argv: readonly string[]): Promise<void> {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText());
    return;
  }
  let options: NodeOptions;
  try {
    const loaded = loadConfig({ argv, env: process.env, cwd: process.cwd() });
    // Workers of --workers N read the same settings: the primary has said it once.
    if (nodeCluster.isPrimary) for (const warning of loaded.warnings) say(`warning: ${warning}`);
    options = loaded.options;
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT_USAGE);
    throw err;
  }
  // --workers N: this process is the primary that forks and watches them, or one of them (see workers/).
  if (options.workers > 1 && nodeCluster.isPrimary) {
    if (options.insecure) process.stderr.write(insecureBanner(options.host));
    const { runPrimary } = await import('./workers/primary.js');
    process.exit(await runPrimary({ argv, env: process.env, cwd: process.cwd(), options, say, chatty: CHATTY_LEVELS.includes(options.logLevel) }));
  }
  const worker = options.workers > 1 ? await import('./workers/worker.js') : undefined;
  if (options.insecure && !worker) process.stderr.write(insecureBanner(options.host));
  let node: SwitchboardNode;
  try {
    // Loaded here so that --help, --version and configuration errors do not load the whole server.
    const { startNode } = await import('./node.js');
    node = worker ? await worker.startWorkerNode(options, startNode) : await startNode(options);
  } catch (err) {
    fail(describeStartError(err, options.host, options.port), EXIT_FAILURE);
  }
  if (CHATTY_LEVELS.includes(options.logLevel) && !worker) {
    const shown = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
    const scheme = schemesOf(options);
    say(`node ${node.id} listening: demo page ${scheme.http}://${shown}:${node.port}/, WebSocket ${scheme.ws}://${shown}:${node.port}/ws`);
  }
  // A certificate renewed on disk is taken up without a restart; a bad one is logged and the old one kept.
  process.on('SIGHUP', () => void node.reloadTls());
  const drain = drainOnSignals(node, options);
  worker?.serveWorker(drain);
}

/**
 * First SIGTERM/SIGINT: drain, then exit 0. Second: exit at once with 128 + signal number.
 * Returns what starts the same drain for another reason (a worker told by its primary); it does nothing once draining.
 */
function drainOnSignals(node: SwitchboardNode, options: NodeOptions): (why: string) => void {
  let draining = false;
  const chatty = CHATTY_LEVELS.includes(options.logLevel);
  const onSignal = (signal: NodeJS.Signals): void => {
    if (draining) {
      say(`${signal} again: exiting without waiting for the drain`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    begin(signal);
  };
  const begin = (why: string): void => {
    if (draining) return;
    draining = true;
    if (chatty) say(`${why}: draining for up to ${options.drainTimeout} s (send it again to exit at once)`);
    // drain() bounds itself by drainTimeout; this backstop only covers a drain that hangs anyway.
    const backstop = options.drainTimeout + DRAIN_GRACE;
    setTimeout(() => fail(`the drain did not finish within ${backstop} s: exiting`, EXIT_FAILURE), backstop * 1000).unref();
    node.drain().then(
      () => process.exit(0),
      (err: unknown) => fail(`the drain failed: ${oneLine(err instanceof Error ? err.message : String(err))}`, EXIT_FAILURE),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return begin;
}

const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address in use (another process holds it: stop that process or pick another --port)',
  EACCES: 'permission denied (ports below 1024 need privileges: pick a higher --port)',
  EADDRNOTAVAIL: 'address not available on this machine (check --host)',
  ENOTFOUND: 'unknown host name (check --host)',
  EAI_AGAIN: 'host name lookup failed (check --host)',
};

/** One line for an error thrown by `startNode`: `cannot listen on 0.0.0.0:8080: address in use (…)`. */
export function describeStartError(err: unknown, host: string, port: number): string {
  const code = errorCode(err);
  const reason = code === undefined ? undefined : LISTEN_ERRORS[code];
  if (reason !== undefined) return `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${reason}`;
  return `cannot start the node: ${oneLine(err instanceof Error ? err.message : String(err))}`;
}

/**
 * The loud warning printed when `--insecure` is on. It says where the node
 * listens: on a loopback address only this machine reaches it (the default
 * under `--insecure`); any other host needed an explicit `--host`.
 */
export function insecureBanner(host: string): string {
  const bar = '!'.repeat(78);
  const where = isLoopback(host)
    ? [`!!  It listens on ${host} only, so other machines cannot reach it`, '!!  (an explicit --host, e.g. --host 0.0.0.0, would open it to the network).']
    : [`!!  It listens on ${host} (from --host): other machines may reach it.`, '!!  Never run a node that is reachable from a network like this.'];
  return [
    bar,
    '!!  WARNING: --insecure is on. DEVELOPMENT ONLY.',
    '!!  Anyone who can reach this node can connect as ANY user with ?user=<id>,',
    '!!  without a token, and may call the server API without an API key.',
    ...where,
    bar,
    '',
  ].join('\n');
}

/** Whether `host` names this machine only: 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The version in package.json. */
export function version(): string {
  // dist/server/cli.js and src/server/cli.ts both sit two folders below the package root.
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const value = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  return typeof value === 'string' ? value : 'unknown';
}

function say(line: string): void {
  process.stderr.write(`switchboard: ${line}\n`);
}

function fail(line: string, code: number): never {
  say(line);
  process.exit(code);
}
