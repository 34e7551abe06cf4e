/**
 * Real `redis-server` processes for tests: standalone or a Cluster, each on
 * free loopback ports with its own temporary directory, no persistence
 * unless asked. Every wait is bounded, and every process is SIGKILLed when
 * the test process exits, so a failing test leaves no servers behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BindError, retryBind, running, stopChild, tempDir, track, waitExit, type ServerProcess } from './children.js';
import { freePort, freePortPair } from './ports.js';
import { sleep } from './wait.js';

const READY_TIMEOUT_MS = 5_000;
const EXIT_TIMEOUT_MS = 5_000;
const CLUSTER_TIMEOUT_MS = 20_000;

/**
 * A redis-server. Its folder holds the AOF with `persistence`; a kill keeps
 * nothing beyond what the AOF holds, a stop (SIGTERM) saves nothing (`--save
 * ''`), and a restart waits until it answers PING.
 */
export interface RedisProcess extends ServerProcess {
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
}

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…` */
  url: string;
  ports: number[];
  nodes: RedisProcess[];
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** AOF with fsync on every write, so data survives `kill()` + `restart()`. Default false. */
  persistence?: boolean;
}


// ---- a tiny RESP client ----------------------------------------------------

/**
 * Send one command over a fresh connection and return its reply: simple
 * strings, integers and bulk strings as text (a null bulk as ''). An error
 * reply rejects. Enough for PING, CLUSTER INFO and FLUSHALL.
 */
export function redisCommand(port: number, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, value = ''): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(new Error(`redis :${port} ${args[0]}: no reply in ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', (err) => done(err));
    sock.on('connect', () => {
      let out = `*${args.length}\r\n`;
      for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      sock.write(out);
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const head = buf.subarray(1, eol).toString();
      switch (String.fromCharCode(buf[0] ?? 0)) {
        case '+':
        case ':':
          return done(null, head);
        case '-':
          return done(new Error(`redis :${port} ${args[0]}: ${head}`));
        case '$': {
          const len = Number(head);
          if (len < 0) return done(null, '');
          if (buf.length < eol + 2 + len + 2) return;
          return done(null, buf.subarray(eol + 2, eol + 2 + len).toString());
        }
        default:
          return done(new Error(`redis :${port} ${args[0]}: unexpected reply ${JSON.stringify(buf.toString().slice(0, 80))}`));
      }
    });
  });
}

/** FLUSHALL on every given server (every master of a cluster). */
export async function flushAll(ports: number[]): Promise<void> {
  await Promise.all(ports.map((p) => redisCommand(p, ['FLUSHALL'])));
}

// ---- one server process ----------------------------------------------------

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-1500);
  } catch {
    return '(no log)';
  }
}

class RedisServer implements RedisProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extraArgs: string[],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private get logFile(): string {
    return join(this.dir, `redis-${this.port}.log`);
  }

  /** Spawn and wait until it answers PING; a bind failure rejects with `BindError`. */
  async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--logfile', this.logFile,
      '--daemonize', 'no',
      ...this.extraArgs,
    ];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.child = child;
    track(child);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) {
        throw new Error(`cannot run redis-server (${spawnError.message}): install the redis-server package (.ci/run does)`);
      }
      if (!running(child)) {
        const log = logTail(this.logFile);
        const msg = `redis-server on port ${this.port} exited during startup:\n${log}`;
        throw /address already in use|could not create server tcp listening socket/i.test(log) ? new BindError(msg) : new Error(msg);
      }
      try {
        if ((await redisCommand(this.port, ['PING'], 500)) === 'PONG') return;
      } catch {
        // not listening yet (or still loading its AOF)
      }
      await sleep(50);
    }
    await this.kill();
    throw new Error(`redis-server on port ${this.port} did not answer PING within ${READY_TIMEOUT_MS} ms:\n${logTail(this.logFile)}`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !running(child)) return;
    child.kill('SIGKILL');
    if (!(await waitExit(child, EXIT_TIMEOUT_MS))) throw new Error(`redis-server on port ${this.port} survived SIGKILL`);
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM', EXIT_TIMEOUT_MS, () => this.kill());
  }

  async restart(): Promise<void> {
    await this.stop();
    // The port was ours a moment ago; it can take a beat before it binds again.
    await retryBind(() => this.launch(), 200);
  }
}

/** Start a server on a port from `pickPort`, trying a new port when the bind fails. */
async function launchOnFreePort(
  pickPort: () => Promise<number>,
  makeDir: () => string,
  extraArgs: (port: number) => string[],
): Promise<RedisServer> {
  return retryBind(async () => {
    const port = await pickPort();
    const server = new RedisServer(port, makeDir(), extraArgs(port));
    await server.launch();
    return server;
  });
}

/** Start a standalone `redis-server` on a free port; resolves once it answers PING. */
export async function startRedis({ persistence = false }: StartRedisOptions = {}): Promise<RedisProcess> {
  const durability = persistence
    ? ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always']
    : ['--save', '', '--appendonly', 'no'];
  return launchOnFreePort(freePort, () => tempDir('switchboard-redis-'), () => durability);
}

/**
 * Start a Redis Cluster of `masters` masters without replicas on free ports
 * (each with its cluster bus port free too), create it with
 * `redis-cli --cluster create`, and wait until every node reports
 * `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = tempDir('switchboard-redis-cluster-');
  const taken = new Set<number>();
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const node = await launchOnFreePort(
        () => freePortPair(taken),
        () => dir,
        (port) => [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', `nodes-${port}.conf`,
          '--cluster-node-timeout', '2000',
          '--save', '',
          '--appendonly', 'no',
        ],
      );
      taken.add(node.port);
      nodes.push(node);
    }
    const ports = nodes.map((n) => n.port);
    await createCluster(ports);
    await waitClusterOk(ports);
    return {
      url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
      ports,
      nodes,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function createCluster(ports: number[]): Promise<void> {
  const args = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'];
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: CLUSTER_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve();
    });
  });
}

async function waitClusterOk(ports: number[]): Promise<void> {
  const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const infos = await Promise.all(ports.map((p) => redisCommand(p, ['CLUSTER', 'INFO'])));
      if (infos.every((i) => i.includes('cluster_state:ok') && i.includes('cluster_slots_assigned:16384'))) return;
      last = infos.join('\n');
    } catch (err) {
      last = String(err);
    }
    await sleep(100);
  }
  throw new Error(`redis cluster on ${ports.join(',')} not ok within ${CLUSTER_TIMEOUT_MS} ms:\n${last}`);
}
