#!/usr/bin/env node
// Runs a TypeScript entry point (a benchmark under bench/) on Node 20:
// esbuild bundles it with our sources into one ESM file, packages stay
// external, then Node runs it with the remaining arguments.
//   node scripts/run-ts.js bench/redis-fanout.ts [args…]
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node scripts/run-ts.js <file.ts> [args…]');
  process.exit(2);
}
const outdir = join(process.cwd(), '.bench-out');
mkdirSync(outdir, { recursive: true });
const outfile = join(outdir, `${basename(entry, '.ts')}.mjs`);
await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', sourcemap: 'inline', logLevel: 'warning' });
process.argv = [process.argv[0], outfile, ...args];
await import(pathToFileURL(outfile).href);
