/**
 * A real PostgreSQL server for tests: `initdb` into a temporary directory,
 * then `postgres` on a free loopback port with durability traded for speed
 * (no fsync), trust authentication on loopback, and one database created for
 * the test. Every wait is bounded, and every process is SIGKILLed when the
 * test process exits, so a failing test leaves no servers behind.
 *
 * initdb and postgres refuse to run as root: as root they run as the
 * `postgres` system user (the Debian package creates it), which then owns the
 * temporary directory.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BindError, retryBind, running, stopChild, tempDir, track, waitExit, type ServerProcess } from './children.js';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

const READY_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;
const INITDB_TIMEOUT_MS = 60_000;
const SQL_TIMEOUT_MS = 15_000;
/** The superuser initdb creates; trust authentication, so no password. */
const USER = 'postgres';
const DATABASE = 'switchboard_test';

/**
 * A PostgreSQL server. Its folder holds the data directory (`data/`), the
 * log and the Unix socket. A kill is SIGKILL to the postmaster: its backends
 * exit on their own when they see it gone, and the next start runs crash
 * recovery. A stop is SIGINT, PostgreSQL's "fast" shutdown (open sessions
 * are ended); a restart waits until it accepts connections.
 */
export interface PostgresProcess extends ServerProcess {
  port: number;
  /** postgres://<user>@127.0.0.1:<port>/<db> — a database created for the test, the user a superuser that needs no password (trust on loopback) */
  url: string;
  /** The postmaster's process id; `undefined` while stopped. */
  readonly pid: number | undefined;
  /**
   * Run SQL (one or more statements, `;`-separated) with psql against `url`
   * and return what they print: one line per row, fields separated by `|`,
   * no headers or command tags, without the final newline. The first error
   * rejects, with psql's message. psql's own syntax applies (`\` commands,
   * `:name` variables outside literals). For test set-up and inspection.
   */
  sql(text: string): Promise<string>;
}

// ---- binaries and the user to run them as --------------------------------------

/** `$PG_BIN`, else the highest version's /usr/lib/postgresql/<version>/bin (Debian's layout). */
function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error(`no PostgreSQL under ${root}/*/bin: install the postgresql package (.ci/run does) or set $PG_BIN`);
  }
  return join(root, versions[0], 'bin');
}

interface Owner {
  uid: number;
  gid: number;
}

/** As root, the `postgres` system user (initdb and postgres refuse root); otherwise run as ourselves. */
function serverOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => {
    try {
      return Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
    } catch {
      throw new Error(`running as root, PostgreSQL must run as the "${USER}" user, and there is none: install the postgresql package (.ci/run does)`);
    }
  };
  return { uid: id('-u'), gid: id('-g') };
}

/** The end of `file`, from byte `from` on (where this start's lines begin, in a log kept across restarts). */
function logTail(file: string, from = 0): string {
  try {
    return readFileSync(file).subarray(from).toString('utf8').slice(-2000);
  } catch {
    return '(no log)';
  }
}

/** `pid`'s state letter and parent from /proc/<pid>/stat; undefined when there is no such process (or no /proc). */
function procStat(pid: number | string): { state: string; ppid: number } | undefined {
  try {
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state = '', ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

/**
 * The processes whose parent is `pid` (Linux; elsewhere none). PostgreSQL's
 * children each make themselves a session leader, so the postmaster's
 * process group does not find them.
 */
function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && procStat(e)?.ppid === pid).map(Number);
}

/**
 * Whether `pid` still runs. A zombie does not: it has let go of the shared
 * memory, and reaping it is up to init, which may take its time (here a
 * second or more).
 */
function alive(pid: number): boolean {
  const state = procStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

// ---- one server ----------------------------------------------------------------

class PostgresServer implements PostgresProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
    private readonly owner: Owner | undefined,
  ) {}

  get url(): string {
    return `postgres://${USER}@127.0.0.1:${this.port}/${DATABASE}`;
  }

  get pid(): number | undefined {
    return this.child !== undefined && running(this.child) ? this.child.pid : undefined;
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  private get logFile(): string {
    return join(this.dir, 'postgres.log');
  }

  /** The postmaster's status line in postmaster.pid ("ready" once it accepts connections), if that file is its. */
  private status(pid: number): string | undefined {
    try {
      const lines = readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n');
      return Number(lines[0]) === pid ? lines[7]?.trim() : undefined;
    } catch {
      return undefined;
    }
  }

  /** Spawn and wait until it accepts connections; a bind failure rejects with `BindError`. */
  async launch(): Promise<void> {
    const args = [
      '-D', this.dataDir,
      '-p', String(this.port),
      '-k', this.dir,
      '-c', 'listen_addresses=127.0.0.1',
      // Tests only: nothing reaches the disk on purpose. A SIGKILL of the
      // server still loses no commit, because a commit still write()s its WAL
      // to the kernel (synchronous_commit stays on; without fsync that costs a
      // syscall) and the kernel keeps it. Only a machine crash would lose it.
      '-c', 'fsync=off',
      '-c', 'full_page_writes=off',
    ];
    const log = openSync(this.logFile, 'a');
    const logFrom = fstatSync(log).size;
    const child = spawn(join(this.bin, 'postgres'), args, { stdio: ['ignore', log, log], cwd: this.dir, ...this.owner });
    closeSync(log);
    this.child = child;
    track(child);
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot run ${join(this.bin, 'postgres')} (${spawnError.message}): install postgresql (.ci/run does)`);
      if (!running(child)) {
        const tail = logTail(this.logFile, logFrom);
        const msg = `postgres on port ${this.port} exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${tail}`;
        throw /could not bind|address already in use/i.test(tail) ? new BindError(msg) : new Error(msg);
      }
      // What `pg_ctl start -w` waits for: the postmaster marks itself ready
      // once recovery is done and it accepts connections.
      if (child.pid !== undefined && this.status(child.pid) === 'ready') return;
      await sleep(20);
    }
    await this.kill();
    throw new Error(`postgres on port ${this.port} did not accept connections within ${READY_TIMEOUT_MS} ms:\n${logTail(this.logFile, logFrom)}`);
  }

  /** Wait until the postmaster and `orphans` have exited; false after the deadline. */
  private async waitGone(child: ChildProcess, orphans: number[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!(await waitExit(child, timeoutMs))) return false;
    while (orphans.some(alive)) {
      if (Date.now() >= deadline) return false;
      await sleep(10);
    }
    return true;
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !running(child)) return;
    // The postmaster's children outlive it for a moment (each exits when it
    // notices the postmaster gone), and a new postmaster refuses to start
    // while they still hold the old shared memory: note them, from a
    // postmaster stopped so that it forks no more, and wait for them too.
    child.kill('SIGSTOP');
    const orphans = child.pid === undefined ? [] : childrenOf(child.pid);
    child.kill('SIGKILL');
    if (await this.waitGone(child, orphans, EXIT_TIMEOUT_MS)) return;
    // One that never noticed: crash it too.
    for (const pid of orphans.filter(alive)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited just now
      }
    }
    if (!(await this.waitGone(child, orphans, EXIT_TIMEOUT_MS))) throw new Error(`postgres on port ${this.port} survived SIGKILL`);
  }

  async stop(): Promise<void> {
    // A fast shutdown ends every session and waits for all children before the postmaster exits.
    await stopChild(this.child, 'SIGINT', EXIT_TIMEOUT_MS, () => this.kill());
  }

  async restart(): Promise<void> {
    await this.stop();
    // The port was ours a moment ago; someone else may have taken it since.
    await retryBind(() => this.launch(), 200);
  }

  sql(text: string, database = DATABASE): Promise<string> {
    const url = `postgres://${USER}@127.0.0.1:${this.port}/${database}`;
    // -X: no ~/.psqlrc; -A -t -q: bare rows, no headers or command tags; the
    // text on stdin so that every statement runs and prints, not only the last.
    const args = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', '-'];
    return new Promise((resolve, reject) => {
      const child = execFile(join(this.bin, 'psql'), args, { timeout: SQL_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) reject(new Error(`psql on port ${this.port} failed: ${stderr.trim() || err.message}\nSQL: ${text.slice(0, 500)}`));
        else resolve(stdout.replace(/\n$/, ''));
      });
      track(child);
      child.stdin?.end(text);
    });
  }
}

/** A data directory made by initdb in `dir`/data, with trust for the Unix socket and 127.0.0.1 only. */
async function initdb(dir: string, bin: string, owner: Owner | undefined): Promise<void> {
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  // --no-sync: a test's cluster need not reach the disk; locale C: the same
  // collation everywhere, whatever the machine's locale.
  const args = ['-D', data, '-U', USER, '-E', 'UTF8', '--locale=C', '--auth=trust', '--no-sync', '--no-instructions'];
  const out = join(dir, 'initdb.log');
  const log = openSync(out, 'w');
  const child = spawn(join(bin, 'initdb'), args, { stdio: ['ignore', log, log], cwd: dir, ...owner });
  closeSync(log);
  track(child);
  const exited = await new Promise<boolean>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run ${join(bin, 'initdb')} (${err.message}): install postgresql (.ci/run does)`)));
    void waitExit(child, INITDB_TIMEOUT_MS).then(resolve);
  });
  if (!exited) {
    child.kill('SIGKILL');
    throw new Error(`initdb did not finish within ${INITDB_TIMEOUT_MS} ms:\n${logTail(out)}`);
  }
  if (child.exitCode !== 0) throw new Error(`initdb failed (code ${child.exitCode}, signal ${child.signalCode}):\n${logTail(out)}`);
  const hba = join(data, 'pg_hba.conf');
  writeFileSync(
    hba,
    ['# TYPE  DATABASE  USER  ADDRESS       METHOD', 'local   all       all                 trust', 'host    all       all   127.0.0.1/32  trust', ''].join('\n'),
  );
  if (owner) chownSync(hba, owner.uid, owner.gid);
}

/**
 * Start a PostgreSQL server on a free loopback port with a fresh data
 * directory and an empty database for the test; resolves once it accepts
 * connections and the database exists.
 */
export async function startPostgres(): Promise<PostgresProcess> {
  const bin = binDir();
  const owner = serverOwner();
  const dir = tempDir('switchboard-postgres-');
  await initdb(dir, bin, owner);
  const server = await retryBind(async () => {
    const candidate = new PostgresServer(await freePort(), dir, bin, owner);
    await candidate.launch();
    return candidate;
  });
  try {
    await server.sql(`CREATE DATABASE ${DATABASE}`, 'postgres');
  } catch (err) {
    await server.kill();
    throw err;
  }
  return server;
}
