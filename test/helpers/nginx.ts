/**
 * Runs the shipped deploy/nginx.conf in a real nginx on a free port, with
 * its upstream servers replaced by the test's nodes. Nothing else of the
 * file is changed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

export const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const SHIPPED = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url));

export interface Nginx {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** The shipped config with `ports` as its upstream servers and `listen` as its port, running in `dir`. */
export function configFor(ports: number[], listen: number, dir: string): string {
  const shipped = readFileSync(SHIPPED, 'utf8');
  const servers = ports.map((p) => `        server 127.0.0.1:${p};`).join('\n');
  const withUpstream = shipped.replace(/(upstream switchboard \{\n)(?:\s*server [^\n]+\n)+/, `$1${servers}\n`);
  const withListen = withUpstream.replace(/listen \d+;/, `listen 127.0.0.1:${listen};`);
  if (withUpstream === shipped || withListen === withUpstream) throw new Error('deploy/nginx.conf changed shape: update test/helpers/nginx.ts');
  // Where an unprivileged nginx keeps its files.
  const local = [
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'daemon off;',
  ].join('\n');
  const paths = [
    `    access_log off;`,
    `    client_body_temp_path ${dir}/body;`,
    `    proxy_temp_path ${dir}/proxy;`,
    `    fastcgi_temp_path ${dir}/fastcgi;`,
    `    uwsgi_temp_path ${dir}/uwsgi;`,
    `    scgi_temp_path ${dir}/scgi;`,
  ].join('\n');
  return `${local}\n${withListen.replace(/worker_processes auto;/, 'worker_processes 1;').replace('http {\n', `http {\n${paths}\n`)}`;
}

/** Check a config with `nginx -t`; returns nginx's output, throws when it is refused. */
export function testConfig(file: string, dir: string): string {
  const r = spawnSync(NGINX, ['-t', '-c', file, '-p', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nginx -t refused ${file}: ${r.stderr}`);
  return r.stderr;
}

export async function startNginx(upstreamPorts: number[]): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, configFor(upstreamPorts, port, dir));
  testConfig(file, dir);
  const proc: ChildProcess = spawn(NGINX, ['-c', file, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += String(d)));
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      break;
    } catch {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start: ${stderr}`);
      await sleep(50);
    }
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGQUIT');
        await Promise.race([exited, sleep(3000)]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
