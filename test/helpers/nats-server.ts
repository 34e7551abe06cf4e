/**
 * Real `nats-server` processes with JetStream for tests: one server, or a
 * cluster of three, each on free loopback ports with its own temporary
 * store directory. A server is ready once its monitoring endpoint says so
 * (`/healthz`, and for a cluster a JetStream meta leader known to every
 * server). Every wait is bounded, and every process is SIGKILLed when the
 * test process exits, so a failing test leaves no servers behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { BindError, retryBind, running, stopChild, tempDir, track, waitExit } from './children.js';
import { freePortNotIn } from './ports.js';
import { sleep } from './wait.js';

const READY_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 5_000;
const CLUSTER_TIMEOUT_MS = 30_000;
/** `$NATS_SERVER`, else Debian's /usr/sbin/nats-server (not always on a non-root PATH), else whatever PATH finds. */
const BINARY = process.env.NATS_SERVER ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

export interface NatsProcess {
  /** Client port. */
  port: number;
  /** `nats://127.0.0.1:<port>` */
  url: string;
  /** The server's directory: config, log, JetStream store. */
  dir: string;
  /** HTTP monitoring port (`/varz`, `/healthz`, …), on 127.0.0.1. */
  readonly monitorPort: number;
  /** The running process's id; `undefined` while stopped. */
  readonly pid: number | undefined;
  /** SIGKILL, as a crash. Waits for the exit. */
  kill(): Promise<void>;
  /** A clean shutdown (SIGTERM). Waits for the exit. */
  stop(): Promise<void>;
  /** Start again on the same ports and store (stopping first if running); waits until healthy. */
  restart(): Promise<void>;
  /**
   * Why the server exited on its own (exit code or signal, and its panic or
   * the end of its log) since it was last (re)started; `undefined` while it
   * runs, or when it was stopped or killed as asked.
   */
  readonly crash: string | undefined;
  /**
   * Throws, with the exit code or signal and the end of the server's log,
   * if the server exited without `kill()` or `stop()` being asked for, so a
   * test that finds it gone says why instead of only "connection refused".
   */
  assertAlive(): void;
}

export interface NatsCluster {
  /** `nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3` */
  url: string;
  nodes: NatsProcess[];
  /** Resolves once every running server knows a JetStream meta leader. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}


// ---- monitoring ------------------------------------------------------------

/** GET a monitoring endpoint: status and body, or rejects (connection refused, timeout). */
function monitor(port: number, path: string, timeoutMs = 1_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${path} timed out`)));
    req.on('error', reject);
  });
}

/** What the monitoring endpoint says of a JetStream stream. */
export interface StreamSeen {
  /** Messages the stream holds now. */
  messages: number;
  /** Its configured max age, in nanoseconds (0: none). */
  maxAgeNs: number;
}

/** A stream as `server`'s monitoring endpoint (`/jsz`) sees it, or undefined when it has none of that name. */
export async function streamSeen(server: NatsProcess, name: string): Promise<StreamSeen | undefined> {
  const { status, body } = await monitor(server.monitorPort, '/jsz?streams=true&config=true');
  if (status !== 200) throw new Error(`GET /jsz answered ${status}: ${body.slice(0, 200)}`);
  interface Jsz {
    account_details?: Array<{ stream_detail?: Array<{ name: string; config?: { max_age?: number }; state?: { messages?: number } }> }>;
  }
  const streams = ((JSON.parse(body) as Jsz).account_details ?? []).flatMap((a) => a.stream_detail ?? []);
  const found = streams.find((st) => st.name === name);
  return found && { messages: found.state?.messages ?? 0, maxAgeNs: found.config?.max_age ?? 0 };
}

// ---- one server process ----------------------------------------------------

interface Ports {
  client: number;
  http: number;
  cluster?: number;
}

class NatsServer implements NatsProcess {
  private child: ChildProcess | undefined;
  /** Set when the process exits on its own (not through kill/stop). */
  private died: string | undefined;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly ports: Ports,
    readonly dir: string,
    /** Cluster routes (other servers' cluster ports), when clustered. */
    private readonly routes: number[] = [],
    /** More lines of server configuration (e.g. a `tls { … }` block). */
    private readonly extra: readonly string[] = [],
  ) {}

  get port(): number {
    return this.ports.client;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get monitorPort(): number {
    return this.ports.http;
  }

  get pid(): number | undefined {
    return this.child !== undefined && running(this.child) ? this.child.pid : undefined;
  }

  private get logFile(): string {
    return join(this.dir, `${this.name}.log`);
  }

  private logTail(): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  /** A Go panic or fatal error from its first line (the stacks after it are long), else the log's tail. */
  private crashReport(): string {
    let log: string;
    try {
      log = readFileSync(this.logFile, 'utf8');
    } catch {
      return '(no log)';
    }
    const start = log.search(/^(panic: |fatal error: )/m);
    return start >= 0 ? log.slice(start, start + 4000) : log.slice(-2000);
  }

  private writeConfig(): string {
    const file = join(this.dir, `${this.name}.conf`);
    const lines = [
      `server_name: ${this.name}`,
      `listen: 127.0.0.1:${this.ports.client}`,
      `http: 127.0.0.1:${this.ports.http}`,
      `jetstream { store_dir: "${join(this.dir, `${this.name}-store`)}" }`,
      ...this.extra,
    ];
    if (this.ports.cluster !== undefined) {
      lines.push(
        'cluster {',
        '  name: switchboard-test',
        `  listen: 127.0.0.1:${this.ports.cluster}`,
        `  routes: [${this.routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}]`,
        '}',
      );
    }
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  /** Spawn and wait until healthy; a bind failure rejects with `BindError`. */
  async launch(): Promise<void> {
    const config = this.writeConfig();
    const log = openSync(this.logFile, 'a');
    const child = spawn(BINARY, ['-c', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    this.died = undefined;
    this.stopping = false;
    track(child);
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child) return;
      this.died = `nats-server ${this.name} (pid ${child.pid}) exited on its own (code ${code}, signal ${signal}); its log ends:\n${this.crashReport()}`;
    });
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot run ${BINARY} (${spawnError.message}): install nats-server (.ci/run does)`);
      if (!running(child)) {
        const tail = this.logTail();
        const msg = `nats-server ${this.name} exited during startup:\n${tail}`;
        throw /address already in use/i.test(tail) ? new BindError(msg) : new Error(msg);
      }
      try {
        // In a cluster /healthz waits for JetStream to be current; a lone server of one is checked by `settled`.
        const { status } = await monitor(this.ports.http, this.ports.cluster === undefined ? '/healthz' : '/varz', 500);
        // Another process (a test's node serves /healthz too) may hold the monitoring port we picked: only ours names itself.
        if (status === 200 && (await this.answersAsItself())) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    await this.kill();
    throw new Error(`nats-server ${this.name} was not healthy within ${READY_TIMEOUT_MS} ms:\n${this.logTail()}`);
  }

  private async answersAsItself(): Promise<boolean> {
    const { status, body } = await monitor(this.ports.http, '/varz', 500);
    if (status !== 200) return false;
    try {
      const varz = JSON.parse(body) as { server_name?: unknown; port?: unknown };
      return varz.server_name === this.name && varz.port === this.ports.client;
    } catch {
      return false;
    }
  }

  get crash(): string | undefined {
    return this.died;
  }

  assertAlive(): void {
    if (this.died !== undefined) throw new Error(this.died);
  }

  get alive(): boolean {
    return this.child !== undefined && running(this.child);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !running(child)) return;
    this.stopping = true;
    child.kill('SIGKILL');
    if (!(await waitExit(child, EXIT_TIMEOUT_MS))) throw new Error(`nats-server ${this.name} survived SIGKILL`);
  }

  async stop(): Promise<void> {
    if (this.child && running(this.child)) this.stopping = true;
    await stopChild(this.child, 'SIGTERM', EXIT_TIMEOUT_MS, () => this.kill());
  }

  async restart(): Promise<void> {
    await this.stop();
    await retryBind(() => this.launch(), 200);
  }
}

/** Ports not yet taken by this process's other servers. */
async function pickPorts(taken: Set<number>, cluster: boolean): Promise<Ports> {
  const pick = (): Promise<number> => freePortNotIn(taken);
  return cluster ? { client: await pick(), http: await pick(), cluster: await pick() } : { client: await pick(), http: await pick() };
}

/** Start one `nats-server -js` on free loopback ports, its configuration ending with `extra` lines; resolves once `/healthz` says ok. */
export async function startNats(extra: readonly string[] = []): Promise<NatsProcess> {
  const dir = tempDir('switchboard-nats-');
  return retryBind(async (attempt) => {
    const server = new NatsServer(`n${attempt}`, await pickPorts(new Set(), false), dir, [], extra);
    await server.launch();
    return server;
  });
}

interface JszMeta {
  meta_cluster?: { leader?: string; cluster_size?: number };
}

/**
 * Start a cluster of `size` servers with JetStream, routed to each other,
 * and wait until every server knows the JetStream meta leader.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = tempDir('switchboard-nats-cluster-');
  return retryBind(async (attempt) => {
    const taken = new Set<number>();
    const ports: Ports[] = [];
    for (let i = 0; i < size; i++) ports.push(await pickPorts(taken, true));
    const nodes = ports.map(
      (p, i) => new NatsServer(`c${attempt}-${i + 1}`, p, dir, ports.filter((_, j) => j !== i).map((q) => q.cluster!)),
    );
    const stop = async (): Promise<void> => {
      await Promise.all(nodes.map((n) => n.stop()));
    };
    const settled = async (): Promise<void> => {
      const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
      let last = '';
      while (Date.now() < deadline) {
        try {
          const alive = nodes.filter((n) => n.alive);
          const answers = await Promise.all(alive.map((n) => monitor(n.ports.http, '/jsz')));
          const leaders = answers.map((a) => (JSON.parse(a.body) as JszMeta).meta_cluster?.leader ?? '');
          const healthy = await Promise.all(alive.map((n) => monitor(n.ports.http, '/healthz')));
          if (leaders.every((l) => l !== '' && l === leaders[0]) && healthy.every((h) => h.status === 200)) return;
          last = `leaders: ${JSON.stringify(leaders)}; health: ${healthy.map((h) => h.body).join(' ')}`;
        } catch (err) {
          last = String(err);
        }
        await sleep(100);
      }
      throw new Error(`nats cluster not settled within ${CLUSTER_TIMEOUT_MS} ms: ${last}`);
    };
    try {
      await Promise.all(nodes.map((n) => n.launch()));
      await settled();
      return { url: `nats://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`, nodes, settled, stop };
    } catch (err) {
      await stop();
      throw err;
    }
  });
}
