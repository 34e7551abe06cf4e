#!/usr/bin/env node
/**
 * Packs the three packages a user installs, from the built tree (`npm run
 * build` first; `npm run pack` does both), into one folder of tarballs:
 *
 * - `switchboard`: the gateway and its `switchboard` command: what the
 *   `files` list of the repository's package.json names, with that
 *   package.json less its scripts and dev dependencies (its `prepare` builds
 *   a clone; an installed package is built already and has no sources).
 * - `switchboard-client`: the client SDK for browsers and Node, with the
 *   protocol and shared code it imports; its one dependency is
 *   `@msgpack/msgpack` (the optional binary codec), and it imports nothing
 *   from Node.
 * - `switchboard-server-sdk`: the typed server API client for services
 *   (Node), with no dependencies.
 *
 * Each of the two small packages is assembled in a staging folder by
 * following the relative imports of its entry point (compiled JS and its
 * .d.ts) through dist/, so it holds exactly the files it needs, laid out as
 * in dist/ so that every `../protocol/…` import resolves. An import of any
 * other package, or of a Node builtin from the client, fails the pack.
 * Versions and dependency ranges come from the root package.json.
 *
 * Usage: node scripts/pack.js [out-dir]   (default: .pack/)
 * Prints the path of each tarball, one a line.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** The extra packages: an entry point in dist/, the packages it may import, and whether Node builtins are allowed. */
const PACKAGES = [
  {
    name: 'switchboard-client',
    entry: 'client/index',
    description: 'The Switchboard client SDK for browsers and Node: one logical connection that reconnects, resubscribes and recovers.',
    dependencies: ['@msgpack/msgpack'],
    node: false,
    readme: [
      'The client SDK of Switchboard, for browsers and Node: `import { SwitchboardClient } from \'switchboard-client\'`.',
      '',
      'It imports nothing from Node. On Node 20 pass the `ws` package\'s class as the `WebSocket` option; Node 22+ and browsers have a global `WebSocket`.',
      'The same code is the `switchboard/client` export of the `switchboard` package. See docs/client.md in the Switchboard repository.',
    ],
  },
  {
    name: 'switchboard-server-sdk',
    entry: 'server-sdk/index',
    description: 'The Switchboard server SDK: the server API as typed calls, with failover, retries and idempotency keys.',
    dependencies: [],
    node: true,
    readme: [
      'The server SDK of Switchboard, for business services in Node: `import { SwitchboardApi } from \'switchboard-server-sdk\'`.',
      '',
      'No dependencies: it uses the global `fetch`. The same code is the `switchboard/server-sdk` export of the `switchboard` package.',
      'See docs/server-sdk.md in the Switchboard repository.',
    ],
  },
];

const out = resolve(process.argv[2] ?? join(root, '.pack'));
for (const file of ['server/cli.js', 'client/index.js', 'server-sdk/index.js']) {
  if (!existsSync(join(dist, file))) fail(`dist/${file} is missing: run npm run build first`);
}
mkdirSync(out, { recursive: true });

const tarballs = [];
const staging = mkdtempSync(join(tmpdir(), 'switchboard-pack-'));
let problem;
try {
  tarballs.push(npmPack(assembleGateway(join(staging, rootPkg.name))));
  for (const spec of PACKAGES) tarballs.push(npmPack(assemble(spec, join(staging, spec.name))));
} catch (err) {
  problem = err instanceof Error ? err.message : String(err);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
if (problem !== undefined) fail(problem);
for (const tarball of tarballs) console.log(tarball);

/** Copies the files npm would pack from the repository (its `files` list) into `dir`, with the package.json an installed package needs; returns `dir`. */
function assembleGateway(dir) {
  const [listing] = JSON.parse(
    execFileSync('npm', ['pack', root, '--dry-run', '--ignore-scripts', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  for (const { path } of listing.files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    copyFileSync(join(root, path), join(dir, path));
  }
  const { scripts, devDependencies, ...pkg } = rootPkg;
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  return dir;
}

/** Copies what `spec.entry` needs from dist/ into `dir`, writes its package.json and README; returns `dir`. */
function assemble(spec, dir) {
  const files = new Set();
  const problems = [];
  for (const ext of ['.js', '.d.ts']) walk(`${spec.entry}${ext}`, ext, spec, files, problems);
  if (problems.length > 0) throw new Error(`${spec.name} must import only ${[...spec.dependencies, 'its own files'].join(', ')}:\n  ${problems.join('\n  ')}`);
  for (const file of files) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(dist, file), join(dir, file));
  }
  const dependencies = Object.fromEntries(spec.dependencies.map((name) => [name, rootPkg.dependencies[name]]));
  const pkg = {
    name: spec.name,
    version: rootPkg.version,
    description: spec.description,
    license: rootPkg.license,
    type: 'module',
    types: `./${spec.entry}.d.ts`,
    exports: {
      '.': { types: `./${spec.entry}.d.ts`, default: `./${spec.entry}.js` },
      './package.json': './package.json',
    },
    sideEffects: false,
    ...(spec.node ? { engines: rootPkg.engines } : {}),
    dependencies,
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  writeFileSync(join(dir, 'README.md'), [`# ${spec.name}`, '', ...spec.readme, ''].join('\n'));
  return dir;
}

/** Adds `file` (relative to dist/) and every file it imports, transitively; records imports that are not allowed. */
function walk(file, ext, spec, files, problems) {
  if (files.has(file)) return;
  const path = join(dist, file);
  if (!existsSync(path)) {
    problems.push(`${file}: missing from dist/`);
    return;
  }
  files.add(file);
  for (const specifier of importsOf(readFileSync(path, 'utf8'))) {
    if (specifier.startsWith('.')) {
      const target = relative(dist, join(dirname(path), specifier)).split(sep).join('/');
      if (target.startsWith('..')) problems.push(`${file}: imports ${specifier}, outside dist/`);
      else walk(ext === '.d.ts' ? target.replace(/\.js$/, '.d.ts') : target, ext, spec, files, problems);
    } else if (builtins.has(specifier)) {
      if (!spec.node) problems.push(`${file}: imports the Node builtin ${specifier}`);
    } else if (!spec.dependencies.some((name) => specifier === name || specifier.startsWith(`${name}/`))) {
      problems.push(`${file}: imports the package ${specifier}`);
    }
  }
}

/** The module specifiers a file imports, re-exports or references (`import('…')` types too), as TypeScript reads them: comments and strings do not count. */
function importsOf(text) {
  const info = ts.preProcessFile(text, true, true);
  return [...info.importedFiles, ...info.referencedFiles, ...info.typeReferenceDirectives].map((ref) => ref.fileName);
}

/** `npm pack` of `dir` into `out`; returns the tarball's path. */
function npmPack(dir) {
  const json = execFileSync('npm', ['pack', dir, '--ignore-scripts', '--json', '--pack-destination', out], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [result] = JSON.parse(json);
  return join(out, result.filename);
}

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(1);
}
