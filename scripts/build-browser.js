#!/usr/bin/env node
/**
 * Bundles the client SDK for browsers: src/client/index.ts →
 * dist/web/switchboard.js (ESM, es2020, with a source map), served by the
 * node at /switchboard.js for the demo page.
 *
 * The SDK must run in a browser as is, so the build fails when the bundle
 * would pull in anything beyond src/client, src/protocol and the shared backoff: a Node builtin
 * (platform "browser" already refuses to resolve those) or any package from
 * node_modules (which could carry Node-only code or polyfills), except the
 * ones listed in `allowedPackages`: checked to be plain, dependency-free code
 * written for browsers and Node alike.
 */
import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'web', 'switchboard.js');
// src/shared/backoff.ts is browser-safe (no Node builtins); the rest of src/shared is Node-only and refused.
const allowed = ['src/client/', 'src/protocol/', 'src/shared/backoff.ts'];
/** The optional MessagePack codec (`codec: 'msgpack'`): no dependencies, no Node APIs. */
const allowedPackages = ['node_modules/@msgpack/msgpack/'];
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/client/index.ts'],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: false,
  sourcemap: true,
  metafile: true,
  tsconfig: 'tsconfig.browser.json',
  logLevel: 'warning',
  legalComments: 'none',
});

const problems = [];
for (const [input, info] of Object.entries(result.metafile.inputs)) {
  const path = input.split(sep).join('/');
  if (path.includes('node_modules/')) {
    // `includes`, not `startsWith`: pnpm and symlinked node_modules put packages under longer paths.
    if (!allowedPackages.some((dir) => path.includes(dir))) problems.push(`${path}: a package from node_modules`);
  }
  else if (!allowed.some((dir) => path.startsWith(dir))) problems.push(`${path}: outside ${allowed.join(', ')}`);
  for (const imp of info.imports) {
    // `<runtime>` is esbuild's own helper code (e.g. for lowered class fields).
    if (imp.path === '<runtime>') continue;
    if (imp.external || builtins.has(imp.path)) problems.push(`${path}: imports ${imp.path}`);
  }
}
if (problems.length > 0) {
  console.error(`build-browser: the browser bundle must not depend on Node or packages:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}

const bytes = result.metafile.outputs[relative(root, outfile).split(sep).join('/')]?.bytes ?? 0;
console.log(`build-browser: ${relative(root, outfile)} (${(bytes / 1024).toFixed(1)} KiB, ${Object.keys(result.metafile.inputs).length} modules)`);
