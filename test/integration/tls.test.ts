/**
 * Native TLS (`--tls-cert`, `--tls-key`): the node serves HTTPS and WSS on
 * its port, the client SDK connects over wss, and a new certificate is taken
 * up on SIGHUP (`reloadTls`) for new handshakes while open connections stay;
 * a bad file keeps the old certificate. The CLI reloads on a real SIGHUP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SwitchboardClient, type Publication } from '../../src/client/index.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { fingerprint, testCa, type CertFiles } from '../helpers/certs.js';
import { track, waitExit } from '../helpers/children.js';
import { freePort } from '../helpers/ports.js';
import { RawClient } from '../helpers/raw-client.js';
import { nextEvent, sleep } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));
const ca = testCa();
const caPem = readFileSync(ca.ca);
const first = ca.issue('first');
const second = ca.issue('second');
const nodes: SwitchboardNode[] = [];

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

/** The files a node serves: copies, so that a test can replace them under it. */
function servedFiles(name: string, from: CertFiles): CertFiles {
  const files = { cert: join(ca.dir, `${name}-served.crt`), key: join(ca.dir, `${name}-served.key`) };
  copyFileSync(from.cert, files.cert);
  copyFileSync(from.key, files.key);
  return files;
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** GET over HTTPS trusting the test CA: status and body. */
function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: caPem, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The `ws` class trusting the test CA, for the SDK. */
class TrustingWebSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { ca: caPem });
  }
}

async function tlsNode(files: CertFiles): Promise<SwitchboardNode> {
  const n = await startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', tlsCert: files.cert, tlsKey: files.key });
  nodes.push(n);
  return n;
}

describe('a node with --tls-cert and --tls-key', () => {
  it('answers /healthz over https and advertises https and wss URLs', async () => {
    const n = await tlsNode(servedFiles('health', first));
    expect(n.url('/healthz')).toMatch(/^https:/);
    expect(await httpsGet(n.url('/healthz'))).toEqual({ status: 200, body: '{"status":"ok"}' });
    const route = JSON.parse((await httpsGet(n.url('/api/route?user=alice'))).body) as { url: string };
    expect(route.url).toBe(`wss://127.0.0.1:${n.port}/ws`);
    const listed = JSON.parse((await httpsGet(n.url('/api/nodes'))).body) as { nodes: Array<{ address: string; url: string }> };
    expect(listed.nodes[0]).toMatchObject({ address: `https://127.0.0.1:${n.port}`, url: `wss://127.0.0.1:${n.port}/ws` });
    // Plain HTTP on the same port gets no answer from the API.
    await expect(fetch(`http://127.0.0.1:${n.port}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  });

  it('serves the client SDK over wss', async () => {
    const n = await tlsNode(servedFiles('sdk', first));
    const c = new SwitchboardClient({ url: `wss://localhost:${n.port}/ws`, WebSocket: TrustingWebSocket, params: { user: 'alice' } });
    try {
      const got = nextEvent<Publication>((listener) => c.once('message', listener), 10_000, 'the message');
      const connected = nextEvent((listener) => c.once('connected', listener), 10_000, 'the client to connect over wss');
      c.connect();
      await connected;
      await n.send('alice', { hello: 'over tls' });
      expect((await got).data).toEqual({ hello: 'over tls' });
    } finally {
      c.disconnect();
    }
  });

  it('reloads the certificate for new connections, keeps open ones, and keeps the old pair when the new one is bad', async () => {
    const files = servedFiles('reload', first);
    const n = await tlsNode(files);
    expect(await peerFingerprint(n.port)).toBe(fingerprint(first.cert));
    const open = await RawClient.connect(`wss://localhost:${n.port}/ws?user=bob`, { ca: caPem });

    copyFileSync(second.cert, files.cert);
    copyFileSync(second.key, files.key);
    expect(n.reloadTls()).toBe(true);
    expect(await peerFingerprint(n.port)).toBe(fingerprint(second.cert));
    // The connection made before the reload is still open and still served.
    await n.send('bob', 'after reload');
    await open.next((f) => f.type === 'message' && f.data === 'after reload');
    expect(open.ws.readyState).toBe(WebSocket.OPEN);

    // A key that does not match, then a missing file: the second certificate stays.
    copyFileSync(first.key, files.key);
    expect(n.reloadTls()).toBe(false);
    writeFileSync(files.cert, 'not a certificate');
    expect(n.reloadTls()).toBe(false);
    expect(await peerFingerprint(n.port)).toBe(fingerprint(second.cert));
    await open.close();
  });

  it('refuses to start with a key that does not match the certificate', async () => {
    await expect(startNode({ port: 0, host: '127.0.0.1', insecure: true, logLevel: 'silent', tlsCert: first.cert, tlsKey: second.key })).rejects.toThrow(
      /does not match the certificate/,
    );
  });
});

/** Runs `switchboard start` with TLS from `files` and `extra` flags; resolves once `/readyz` answers over https. */
async function startProcess(files: CertFiles, extra: string[]): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const args = [BIN, 'start', '--insecure', '--port', String(port), '--tls-cert', files.cert, '--tls-key', files.key, '--log-level', 'warn', ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await httpsGet(`https://127.0.0.1:${port}/readyz`)).status === 200) return { port, child };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`node did not start:\n${stderr}`);
    }
    await sleep(100);
  }
}

/** After replacing `files` with `second` and a SIGHUP, `tries` new connections in a row all see the second certificate. */
async function reloadsOnSighup(files: CertFiles, child: ChildProcess, port: number, tries: number): Promise<void> {
  expect(await peerFingerprint(port)).toBe(fingerprint(first.cert));
  copyFileSync(second.cert, files.cert);
  copyFileSync(second.key, files.key);
  child.kill('SIGHUP');
  const expected = fingerprint(second.cert);
  let inARow = 0;
  for (let i = 0; i < 100 && inARow < tries; i++) {
    inARow = (await peerFingerprint(port)) === expected ? inARow + 1 : 0;
    if (inARow === 0) await sleep(100);
  }
  expect(inARow).toBe(tries);
  expect(child.exitCode).toBeNull();
}

describe('switchboard start with TLS (process)', () => {
  it('serves https and reloads its certificate on SIGHUP', async () => {
    const files = servedFiles('cli', first);
    const { port, child } = await startProcess(files, []);
    try {
      await reloadsOnSighup(files, child, port, 1);
    } finally {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
  });

  it('with --workers 2, the primary passes SIGHUP on to every worker', async () => {
    const files = servedFiles('workers', first);
    const { port, child } = await startProcess(files, ['--workers', '2']);
    try {
      // Connections go to the workers in turn: eight in a row all see the new certificate only if both reloaded.
      await reloadsOnSighup(files, child, port, 8);
    } finally {
      child.kill('SIGTERM');
      if (!(await waitExit(child, 10_000))) child.kill('SIGKILL');
    }
  }, 60_000);
});
