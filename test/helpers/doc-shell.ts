/**
 * Runs shell commands copied from the docs, as a user would paste them: with
 * bash, as an ordinary user (when the tests run as root, as `nobody` through
 * setpriv, so that a command needing root fails here too), in the user's own
 * scratch folders. `npx switchboard` runs this repository's built command
 * (`bin/switchboard.js`) instead of asking the npm registry: a shim named
 * `npx` comes first on PATH. Each run is a process group of its own, killed
 * at the end with everything it left in the background.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './markdown.js';
import { tempDir } from './children.js';
import { within } from '../../src/shared/time.js';

/** The unprivileged account the blocks run as when the tests run as root. */
const NOBODY = 65534;
const DROP = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
/**
 * Root runs the blocks as nobody, when setpriv exists and nobody can run this
 * repository's command (a checkout under /root, say, it cannot read: then
 * the blocks run as root, and a command that needs root is not caught).
 */
const asNobody =
  process.getuid?.() === 0 &&
  spawnSync(DROP[0] as string, [...DROP.slice(1), process.execPath, join(ROOT, 'bin', 'switchboard.js'), '--version'], { stdio: 'ignore' }).status === 0;

export interface ShellRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Shell {
  child: ChildProcess;
  /** What it wrote so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves when bash (or what it exec'd) exits. */
  done: Promise<ShellRun>;
  /** `signal` to the whole process group: bash and everything it started in the background. */
  signalGroup(signal: NodeJS.Signals): void;
}

const groups = new Set<number>();
let shimDir: string | undefined;

/** A fresh folder the user running the blocks owns. */
export function userDir(prefix: string): string {
  const dir = tempDir(prefix);
  if (asNobody) chownSync(dir, NOBODY, NOBODY);
  return dir;
}

/** The folder holding the `npx` shim, readable by that user. */
function shim(): string {
  if (shimDir) return shimDir;
  const dir = tempDir('sb-npx-shim-');
  const file = join(dir, 'npx');
  writeFileSync(
    file,
    [
      '#!/usr/bin/env bash',
      '# npx, for the doc tests: `npx switchboard …` runs the repository\'s built command.',
      '[ "$1" = switchboard ] || { echo "npx (doc test shim): only switchboard is available" >&2; exit 127; }',
      'shift',
      `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'bin', 'switchboard.js'))} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
  chmodSync(dir, 0o755);
  shimDir = dir;
  return dir;
}

/** `argv` as the user the blocks run as: behind setpriv when that is nobody. */
export function asUser(argv: string[]): string[] {
  return asNobody ? [...DROP, ...argv] : argv;
}

/** The test runner's environment without its SWITCHBOARD_* variables (so only what a doc sets counts), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SWITCHBOARD_')) out[name] = value;
  return { ...out, ...extra };
}

/** What the blocks run with: a clean environment, a home of their own, the shim first on PATH, plus `env`. */
function userEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return cleanEnv({ HOME: userDir('sb-home-'), PATH: `${shim()}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...env });
}

/** Start `script` with `bash -e -c` (so a single command is exec'd, and signals reach it), in `cwd`. */
export function startShell(script: string, env: Record<string, string> = {}, cwd = ROOT): Shell {
  const bash = ['bash', '-e', '-c', script];
  const [command, ...args] = asUser(bash);
  const child = spawn(command as string, args, { cwd, env: userEnv(env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) groups.add(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<ShellRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    output: () => ({ stdout, stderr }),
    done,
    signalGroup(signal) {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone
      }
    },
  };
}

/** Run `script` to its end; rejects after `timeoutMs` (the group is killed then). */
export async function runShell(script: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<ShellRun> {
  const shell = startShell(script, env);
  try {
    return await within(shell.done, timeoutMs, "the doc's commands");
  } catch (err) {
    shell.signalGroup('SIGKILL');
    const { stdout, stderr } = shell.output();
    throw new Error(`${(err as Error).message}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  }
}

/** SIGKILL every process group these helpers started (what the blocks left running included). */
export function killShells(): void {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  groups.clear();
}
