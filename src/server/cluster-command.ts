/**
 * `switchboard cluster --nodes N [start flags]`: for development, start N
 * node processes on consecutive ports over one shared broker, and print how
 * to put a load balancer in front of them. SIGTERM/SIGINT drain them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './config/errors.js';
import { loadConfig } from './config/load.js';

/** Most nodes one `cluster` command starts. */
export const MAX_CLUSTER_NODES = 32;

export interface ClusterPlan {
  nodes: number;
  /** Flags for each child's `start`, without --port and --node-id. */
  startArgs: string[];
  basePort: number;
  host: string;
  idPrefix: string;
}

/** Read `--nodes` and check the start flags once (a bad setting fails here, not N times). Throws `ConfigError`. */
export function planCluster(argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string): ClusterPlan {
  const rest: string[] = [];
  let nodes: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const inline = arg.startsWith('--nodes=') ? arg.slice('--nodes='.length) : undefined;
    if (arg === '--nodes' || inline !== undefined) {
      const text = inline ?? argv[++i];
      nodes = Number(text);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_CLUSTER_NODES) {
        throw new ConfigError(`--nodes must be a whole number from 1 to ${MAX_CLUSTER_NODES}, not ${JSON.stringify(text ?? '')}`);
      }
      continue;
    }
    rest.push(arg);
  }
  if (nodes === undefined) throw new ConfigError('cluster needs --nodes N (how many local nodes to start)');
  const { options } = loadConfig({ argv: rest, env, cwd });
  if (options.broker === 'memory') {
    throw new ConfigError(
      'cluster needs a shared broker: the memory broker lives in one process, so give --broker redis://127.0.0.1:6379 (or another broker URL),' +
        ` or run switchboard start --workers ${nodes} for ${nodes} nodes on one port over the memory broker`,
    );
  }
  if (options.port === 0) throw new ConfigError('cluster needs a fixed --port: the nodes take it and the ports after it');
  if (options.port + nodes - 1 > 65535) throw new ConfigError(`--port ${options.port} + ${nodes} nodes goes past 65535`);
  const startArgs = withoutFlags(rest, ['--port', '--node-id']);
  const idPrefix = options.nodeId && hasFlag(rest, '--node-id') ? options.nodeId : 'node';
  return { nodes, startArgs, basePort: options.port, host: options.host, idPrefix };
}

/** The `switchboard cluster --help` text, ending with a newline. */
export function clusterHelpText(): string {
  return [
    'Usage: switchboard cluster --nodes N [flags of start]',
    '',
    'Runs N local nodes for development on consecutive ports (--port, --port + 1, …)',
    'over one shared broker, prints the nginx upstream block for them, and drains',
    'them all on SIGTERM or Ctrl-C.',
    '',
    `  --nodes <n>       how many nodes to start, 1 to ${MAX_CLUSTER_NODES} (required)`,
    '  --broker <url>    the broker they share: redis://, redis+cluster://, nats:// or',
    '                    amqp:// (required: the memory broker lives in one process; for',
    '                    several nodes on one machine over it, use start --workers N)',
    '  --port <port>     the first node\'s port; the others take the ports after it [8080]',
    '  --node-id <id>    the prefix of the node ids: <id>-1, <id>-2, … [node]',
    '  -h, --help        show this text',
    '',
    'Every other flag, environment variable and --config file setting of start is',
    'passed to each node: see switchboard start --help.',
    '',
  ].join('\n');
}

/** The nginx upstream block for a plan, to paste into deploy/nginx.conf. */
export function nginxUpstream(plan: ClusterPlan): string {
  const host = plan.host === '0.0.0.0' || plan.host === '::' ? '127.0.0.1' : plan.host;
  const servers = Array.from({ length: plan.nodes }, (_, i) => `    server ${host}:${plan.basePort + i};`);
  return ['upstream switchboard {', ...servers, '}'].join('\n');
}

/** Start the plan's nodes; resolves when every child has exited. */
export function runCluster(plan: ClusterPlan, say: (line: string) => void): Promise<number> {
  const bin = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));
  const children: ChildProcess[] = [];
  for (let i = 0; i < plan.nodes; i++) {
    const port = plan.basePort + i;
    const child = spawn(process.execPath, [bin, 'start', ...plan.startArgs, '--port', String(port), '--node-id', `${plan.idPrefix}-${i + 1}`], {
      stdio: 'inherit',
    });
    children.push(child);
  }
  say(`started ${plan.nodes} nodes on ports ${plan.basePort}–${plan.basePort + plan.nodes - 1}`);
  say('put a load balancer in front (round-robin, no sticky sessions needed), e.g. nginx with this upstream block (docs/cluster.md):');
  // Unprefixed and in one write, so the block can be pasted (or cut out of a log) as it is.
  process.stderr.write(`${nginxUpstream(plan)}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      for (const c of children) c.kill('SIGKILL');
      return;
    }
    stopping = true;
    say(`${signal}: draining every node`);
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  return new Promise((resolve) => {
    let running = children.length;
    let worst = 0;
    children.forEach((child, i) => {
      child.on('exit', (code, signal) => {
        if (!stopping) say(`node ${plan.idPrefix}-${i + 1} exited (${signal ?? `code ${code ?? 0}`}); the others keep running`);
        worst = Math.max(worst, code ?? 1);
        if (--running === 0) resolve(stopping ? worst : 1);
      });
    });
  });
}

function hasFlag(argv: readonly string[], flag: string): boolean {
  return argv.some((a) => a === flag || a.startsWith(`${flag}=`));
}

function withoutFlags(argv: readonly string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (flags.includes(arg)) {
      i++;
      continue;
    }
    if (flags.some((f) => arg.startsWith(`${f}=`))) continue;
    out.push(arg);
  }
  return out;
}
