/**
 * TLS-only `redis-server`s for tests (`--port 0`: no plain port at all),
 * on free loopback ports, optionally requiring client certificates: one
 * server, or a Redis Cluster whose bus is TLS too. A server is ready once it
 * answers PING over TLS; every one is killed when the test process exits.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { CertFiles } from './certs.js';
import { running, tempDir, track, waitExit } from './children.js';
import { freePort, freePortPair } from './ports.js';
import { sleep } from './wait.js';

const READY_TIMEOUT_MS = 10_000;

export interface TlsRedis {
  port: number;
  /** `rediss://127.0.0.1:<port>` (add the `tls-*` options). */
  url: string;
  stop(): Promise<void>;
}

export interface TlsRedisOptions {
  /** The server's certificate. */
  server: CertFiles;
  /** CA file the server trusts for client certificates. */
  ca: string;
  /** Refuse clients without a certificate signed by `ca` (default false). */
  clientCerts?: boolean;
  /** The certificate the readiness PING presents (needed with `clientCerts`). */
  client?: CertFiles;
}

/** PING over TLS: resolves with the reply's first line. */
function tlsPing(port: number, o: TlsRedisOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(o.ca),
      ...(o.client ? { cert: readFileSync(o.client.cert), key: readFileSync(o.client.key) } : {}),
      servername: 'localhost',
      timeout: 500,
    });
    socket.once('secureConnect', () => socket.write('PING\r\n'));
    socket.once('data', (data: Buffer) => {
      resolve(data.toString('utf8').split('\r\n')[0] ?? '');
      socket.destroy();
    });
    socket.once('timeout', () => socket.destroy(new Error('timeout')));
    socket.once('error', reject);
  });
}

/** Starts one server; rejects with the end of its log when it does not answer within 10 s. */
export async function startTlsRedis(o: TlsRedisOptions): Promise<TlsRedis> {
  return launch(o, await freePort(), tempDir('switchboard-redis-tls-'), []);
}

/** Starts `masters` TLS-only servers (cluster bus over TLS too) and makes them one Redis Cluster; `url` is its `rediss+cluster://` seed list. */
export async function startTlsRedisCluster(o: TlsRedisOptions & { client: CertFiles }, masters = 3): Promise<TlsRedis> {
  const dir = tempDir('switchboard-redis-tls-cluster-');
  const servers: TlsRedis[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    const taken = new Set<number>();
    for (let i = 0; i < masters; i++) {
      const port = await freePortPair(taken);
      taken.add(port);
      servers.push(await launch(o, port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--tls-cluster', 'yes']));
    }
    const ports = servers.map((s) => s.port);
    const cli = ['--tls', '--cacert', o.ca, '--cert', o.client.cert, '--key', o.client.key];
    await run([...cli, '-p', String(ports[0]), '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const infos = await Promise.all(ports.map((p) => run([...cli, '-p', String(p), 'CLUSTER', 'INFO']).catch(() => '')));
      if (infos.every((i) => i.includes('cluster_state:ok'))) break;
      if (Date.now() > deadline) throw new Error(`TLS redis cluster on ${ports.join(',')} not ok within 30 s:\n${infos.join('\n')}`);
      await sleep(100);
    }
    return { port: ports[0] ?? 0, url: `rediss+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function launch(o: TlsRedisOptions, port: number, dir: string, extra: string[]): Promise<TlsRedis> {
  const log = join(dir, `redis-${port}.log`);
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port', '0',
      '--tls-port', String(port),
      '--bind', '127.0.0.1',
      '--tls-cert-file', o.server.cert,
      '--tls-key-file', o.server.key,
      '--tls-ca-cert-file', o.ca,
      '--tls-auth-clients', o.clientCerts ? 'yes' : 'no',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--logfile', log,
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  track(child);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await tlsPing(port, o)) === '+PONG') break;
    } catch {
      // not listening yet
    }
    if (!running(child) || Date.now() > deadline) {
      child.kill('SIGKILL');
      let tail = '(no log)';
      try {
        tail = readFileSync(log, 'utf8').slice(-1500);
      } catch {
        // none written
      }
      throw new Error(`TLS redis-server on ${port} did not answer PING (is redis-server built with TLS?):\n${tail}`);
    }
    await sleep(50);
  }
  return {
    port,
    url: `rediss://127.0.0.1:${port}`,
    async stop() {
      if (!running(child)) return;
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    },
  };
}
