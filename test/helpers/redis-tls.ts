/**
 * A TLS-only `redis-server` for tests (`--port 0`: no plain port at all),
 * on a free loopback port, optionally requiring client certificates. Ready
 * once it answers PING over TLS; killed when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { CertFiles } from './certs.js';
import { running, tempDir, track, waitExit } from './children.js';
import { freePort } from './ports.js';
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

/** Starts the server; rejects with the end of its log when it does not answer within 10 s. */
export async function startTlsRedis(o: TlsRedisOptions): Promise<TlsRedis> {
  const dir = tempDir('switchboard-redis-tls-');
  const port = await freePort();
  const log = join(dir, 'redis.log');
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
