/**
 * The deployment files (Dockerfile, deploy/docker-compose.yml,
 * deploy/nginx.compose.conf, deploy/k8s/*) checked without pulling an image
 * or reaching a cluster: they parse, every SWITCHBOARD_* variable is a real
 * setting with a valid value, the probe and healthcheck paths answer on a
 * real node, the ports agree, the shutdown budget covers the drain, and the
 * selectors select the Deployment's pods. A renamed flag, a moved endpoint or
 * a drain timeout raised past the grace period fails here, not in production.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseEnv } from '../../src/server/config/env.js';
import { startNode, type SwitchboardNode } from '../../src/server/node.js';
import { withDefaults } from '../../src/server/options.js';
import { tempDir } from '../helpers/children.js';
import { TEST_NODE } from '../helpers/fixture.js';
import { NGINX, startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** A parsed YAML mapping; manifests are walked with `at`, which fails loudly on a missing key. */
type Yaml = Record<string, unknown>;

/** `obj.a.b.c`, throwing with the path when something on the way is missing. */
function at(obj: unknown, ...path: (string | number)[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || !(key in cur)) throw new Error(`missing ${path.join('.')}`);
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return cur;
}
const map = (obj: unknown, ...path: (string | number)[]): Yaml => at(obj, ...path) as Yaml;
const list = (obj: unknown, ...path: (string | number)[]): Yaml[] => at(obj, ...path) as Yaml[];

/**
 * Reads `env` as a node would (`parseEnv`): throws on a bad value, and returns
 * the variables that are not settings (a typo a node would only warn about).
 */
function unknownVariables(env: Record<string, string>): string[] {
  const { warnings } = parseEnv(env, ROOT);
  return warnings;
}

/** Compose's `${VAR:?message}` / `${VAR:-default}` replaced by a sample value, for parsing. */
const interpolated = (value: string): string => value.replace(/\$\{[^}]+\}/g, 'sample-value');

/** The paths a healthcheck command fetches: `http://127.0.0.1:8080/healthz` or `… + '/healthz'` → `/healthz`. */
const pathsIn = (text: string): string[] => [...text.matchAll(/(?:https?:\/\/[^/'"\s]+|')(\/[A-Za-z0-9_/-]*)/g)].map((m) => m[1]!);

let node: SwitchboardNode;
beforeAll(async () => {
  node = await startNode(TEST_NODE);
});
afterAll(async () => {
  await node?.close();
});

/** The endpoint answers 200 on a real node (memory broker, so /readyz is ready). */
async function answers(path: string): Promise<number> {
  return (await fetch(node.url(path))).status;
}

const drainDefault = withDefaults().drainTimeout;
const portDefault = withDefaults().port;

describe('Dockerfile', () => {
  const file = read('Dockerfile');
  const lines = file.split('\n').filter((l) => !l.startsWith('#'));
  const stages = [...file.matchAll(/^FROM (\S+) AS (\S+)$/gm)].map((m) => ({ image: m[1], name: m[2], at: m.index }));
  const runtimeText = file.slice(stages.at(-1)?.at ?? 0);

  it('builds with node:24-slim (the current LTS) and runs with production dependencies only', () => {
    expect(stages.map((s) => s.image)).toEqual(['node:24-slim', 'node:24-slim']);
    const buildText = file.slice(stages[0]!.at, stages[1]!.at);
    expect(buildText).toMatch(/^RUN npm ci\b/m);
    expect(buildText).toMatch(/^RUN npm run build$/m);
    expect(runtimeText).toMatch(/^RUN npm ci [^\n]*--omit=dev/m);
    expect(runtimeText).toContain(`COPY --from=${stages[0]!.name} /app/dist ./dist`);
  });

  it('runs as a non-root user, exposes the node port, stops with SIGTERM and starts the node', () => {
    const user = /^USER (\S+)$/m.exec(runtimeText)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(runtimeText).toMatch(new RegExp(`^EXPOSE ${portDefault}$`, 'm'));
    expect(runtimeText).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(JSON.parse(/^CMD (\[.*\])$/m.exec(runtimeText)?.[1] ?? 'null')).toEqual(['node', 'bin/switchboard.js', 'start']);
  });

  it('has a HEALTHCHECK on /healthz that passes against a live node and fails against none', async () => {
    const line = /^HEALTHCHECK .*$/m.exec(lines.join('\n').replace(/\\\n/g, ''))?.[0] ?? '';
    expect(pathsIn(line)).toEqual(['/healthz']);
    const argv = JSON.parse(/ CMD (\[.*\])$/.exec(line)?.[1] ?? 'null') as string[];
    expect(argv[0]).toBe('node');
    // Run the very command, as the container would, against a node on SWITCHBOARD_PORT
    // (asynchronously: the node answering it lives in this process).
    const run = (port: number): Promise<number | null> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, argv.slice(1), { env: { ...process.env, SWITCHBOARD_PORT: String(port) }, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('error', reject);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    expect(await run(node.port)).toBe(0);
    expect(await run(await freePort())).toBe(1);
  });

  it('copies what the node serves, and .dockerignore keeps none of it out', () => {
    const ignored = new Set(read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
    const sources = [...file.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), `${src} is COPYed but missing`).toBe(true);
      expect(ignored.has(src), `${src} is COPYed but ignored`).toBe(false);
    }
    // Every tsconfig the build reads (`npm run build` uses tsconfig.build.json and the browser bundle's).
    const tsconfigs = readdirSync(ROOT).filter((f) => /^tsconfig.*\.json$/.test(f));
    for (const t of tsconfigs) expect(sources, `${t} is not COPYed into the build stage`).toContain(t);
    // The node serves web/index.html and runs bin/switchboard.js; package.json makes dist/ ESM.
    for (const needed of ['bin', 'web', 'package.json']) expect(runtimeText).toMatch(new RegExp(`^COPY [^\\n]*\\b${needed}\\b`, 'm'));
  });
});

describe('deploy/docker-compose.yml', () => {
  const compose = parse(read('deploy/docker-compose.yml'), { merge: true }) as Yaml;
  const services = map(compose, 'services');
  const nodeNames = Object.keys(services).filter((name) => /^node\d+$/.test(name));
  const envOf = (name: string): Record<string, string> =>
    Object.fromEntries(Object.entries(map(services, name, 'environment')).map(([k, v]) => [k, interpolated(String(v))]));

  it('runs three nodes with distinct ids on the Redis service, and the API key from the environment', () => {
    expect(nodeNames).toEqual(['node1', 'node2', 'node3']);
    expect(new Set(nodeNames.map((n) => envOf(n).SWITCHBOARD_NODE_ID)).size).toBe(3);
    for (const name of nodeNames) {
      const raw = map(services, name, 'environment');
      expect(raw.SWITCHBOARD_BROKER).toBe('redis://redis:6379');
      expect(String(raw.SWITCHBOARD_API_KEY)).toMatch(/^\$\{SWITCHBOARD_API_KEY\b/);
    }
    expect(services.redis).toBeDefined();
  });

  it('names only real settings, with values a node accepts', () => {
    for (const name of nodeNames) expect(unknownVariables(envOf(name))).toEqual([]);
  });

  it('has healthchecks on paths a node answers, and starts each service after what it needs is healthy', async () => {
    for (const name of Object.keys(services)) expect(map(services, name, 'healthcheck').test, `${name} healthcheck`).toBeDefined();
    for (const name of nodeNames) {
      const test = JSON.stringify(map(services, name, 'healthcheck').test);
      for (const path of pathsIn(test)) expect(await answers(path)).toBe(200);
      // It asks the port the node listens on.
      expect([...test.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => m[1])).toEqual([envOf(name).SWITCHBOARD_PORT ?? String(portDefault)]);
      expect(map(services, name, 'depends_on', 'redis').condition).toBe('service_healthy');
    }
    for (const name of nodeNames) expect(map(services, 'nginx', 'depends_on', name).condition).toBe('service_healthy');
  });

  it('gives a stopping node more time than its drain', () => {
    for (const name of nodeNames) {
      const drain = Number(envOf(name).SWITCHBOARD_DRAIN_TIMEOUT ?? drainDefault);
      const grace = /^(\d+)s$/.exec(String(at(services, name, 'stop_grace_period')))?.[1];
      expect(Number(grace)).toBeGreaterThan(drain);
    }
  });

  it('points nginx at deploy/nginx.compose.conf, whose upstream is the node services', () => {
    const volumes = list(services, 'nginx', 'volumes').map(String);
    expect(volumes).toContain('./nginx.compose.conf:/etc/nginx/nginx.conf:ro');
    const conf = read('deploy/nginx.compose.conf');
    const upstream = [...conf.matchAll(/^\s*server (\S+):(\d+);$/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(upstream).toEqual(nodeNames.map((n) => `${n}:${envOf(n).SWITCHBOARD_PORT ?? portDefault}`));
  });
});

describe('deploy/nginx.compose.conf', () => {
  const compose = read('deploy/nginx.compose.conf');

  it('is deploy/nginx.conf with only the upstream servers changed', () => {
    const shape = (conf: string): string =>
      conf
        .split('\n')
        .filter((l) => !l.startsWith('#') && !/^\s*server \S+;$/.test(l))
        .join('\n')
        .trim();
    expect(shape(compose)).toBe(shape(read('deploy/nginx.conf')));
  });

  it('passes `nginx -t` (service names replaced by 127.0.0.1, which resolves here)', () => {
    const dir = tempDir('sb-nginx-compose-');
    const local = compose.replace(/^(\s*server )node\d+(:\d+;)$/gm, '$1127.0.0.1$2');
    expect(local).not.toBe(compose);
    const paths = [`pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log warn;`].join('\n');
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/${t};`).join('\n');
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, `${paths}\n${local.replace('http {\n', `http {\n    access_log off;\n${temp}\n`)}`);
    const r = spawnSync(NGINX, ['-t', '-c', file, '-p', dir], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toMatch(/test is successful/);
    expect(r.status).toBe(0);
  });
});

describe('deploy/nginx.conf', () => {
  it('does not expose /metrics, which each node serves without credentials', async () => {
    const nginx = await startNginx([node.port]);
    try {
      expect((await fetch(`${nginx.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${nginx.url}/healthz`)).status).toBe(200);
      expect(await answers('/metrics')).toBe(200);
    } finally {
      await nginx.stop();
    }
  });
});

describe('deploy/k8s', () => {
  const dir = join(ROOT, 'deploy/k8s');
  const docs: Yaml[] = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
        if (d.errors.length > 0) throw new Error(`${f}: ${d.errors[0]!.message}`);
        return d.toJS() as Yaml;
      }),
    );
  const ofKind = (kind: string): Yaml[] => docs.filter((d) => d.kind === kind);
  const one = (kind: string): Yaml => {
    const found = ofKind(kind);
    expect(found.map((d) => map(d, 'metadata').name), kind).toHaveLength(1);
    return found[0]!;
  };
  const deployment = one('Deployment');
  const pod = map(deployment, 'spec', 'template');
  const podLabels = map(pod, 'metadata', 'labels');
  const container = list(pod, 'spec', 'containers')[0]!;
  const configMap = one('ConfigMap');
  const secret = one('Secret');
  const selects = (selector: Yaml): boolean =>
    Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => podLabels[k] === v);

  it('parses, and has every kind a deployment needs', () => {
    expect([...new Set(docs.map((d) => d.kind))].sort()).toEqual(
      ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Secret', 'Service'].sort(),
    );
  });

  it('runs three replicas whose environment names only real settings, with values a node accepts', () => {
    expect(map(deployment, 'spec').replicas).toBe(3);
    expect(selects(map(deployment, 'spec', 'selector', 'matchLabels'))).toBe(true);
    const refs = list(container, 'envFrom');
    expect(refs.filter((r) => 'configMapRef' in r).map((r) => map(r, 'configMapRef').name)).toEqual([map(configMap, 'metadata').name]);
    expect(refs.filter((r) => 'secretRef' in r).map((r) => map(r, 'secretRef').name)).toEqual([map(secret, 'metadata').name]);
    const env: Record<string, string> = {
      ...(map(configMap, 'data') as Record<string, string>),
      ...(map(secret, 'stringData') as Record<string, string>),
    };
    for (const e of list(container, 'env')) env[String(e.name)] = 'value' in e ? String(e.value) : 'switchboard-6d5f7c9b8-x2x7q';
    expect(Object.keys(env)).toContain('SWITCHBOARD_NODE_ID');
    expect(unknownVariables(env)).toEqual([]);
  });

  it('listens where the container port, the probes and the Service point', () => {
    const configured = Number((map(configMap, 'data').SWITCHBOARD_PORT as string | undefined) ?? portDefault);
    const ports = list(container, 'ports');
    expect(ports.map((p) => p.containerPort)).toEqual([configured]);
    const portName = ports[0]!.name;
    for (const probe of ['readinessProbe', 'livenessProbe']) expect(map(container, probe, 'httpGet').port).toBe(portName);
    const service = one('Service');
    expect(selects(map(service, 'spec', 'selector'))).toBe(true);
    expect(list(service, 'spec', 'ports').map((p) => p.targetPort)).toEqual([portName]);
  });

  it('probes readiness on /readyz and liveness on /healthz, which a node answers', async () => {
    expect(map(container, 'readinessProbe', 'httpGet').path).toBe('/readyz');
    expect(map(container, 'livenessProbe', 'httpGet').path).toBe('/healthz');
    expect(await answers('/readyz')).toBe(200);
    expect(await answers('/healthz')).toBe(200);
  });

  it('gives a terminating pod more time than its preStop sleep and drain together', () => {
    const command = list(container, 'lifecycle', 'preStop', 'exec', 'command') as unknown as string[];
    expect(command[0]).toBe('sleep');
    const preStop = Number(command[1]);
    expect(preStop).toBeGreaterThan(0);
    const drain = Number((map(configMap, 'data').SWITCHBOARD_DRAIN_TIMEOUT as string | undefined) ?? drainDefault);
    expect(Number(map(pod, 'spec').terminationGracePeriodSeconds)).toBeGreaterThan(drain + preStop);
  });

  it('has a PodDisruptionBudget and an autoscaler aimed at the Deployment', () => {
    const pdb = one('PodDisruptionBudget');
    expect(selects(map(pdb, 'spec', 'selector', 'matchLabels'))).toBe(true);
    const hpa = one('HorizontalPodAutoscaler');
    const target = map(hpa, 'spec', 'scaleTargetRef');
    expect([target.kind, target.name]).toEqual(['Deployment', map(deployment, 'metadata').name]);
    expect(Number(map(hpa, 'spec').minReplicas)).toBeGreaterThanOrEqual(Number(map(deployment, 'spec').replicas));
    expect(Number(map(hpa, 'spec').maxReplicas)).toBeGreaterThan(Number(map(hpa, 'spec').minReplicas));
  });
});
