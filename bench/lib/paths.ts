// Where a benchmark finds the repository, the node binary and the bundles.
// scripts/run-ts.js bundles each bench entry point into .bench-out/, one
// level below the root like bench/, so `..` of the bundle's URL is the root.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = `${ROOT}bin/switchboard.js`;
/** The bundles' folder. */
export const OUT = join(ROOT, '.bench-out');
/** The API key every benchmark's nodes accept. */
export const API_KEY = 'bench-key';

/** Bundles `entry` (a path under the root) to `.bench-out/<name>.mjs`, packages external; answers the bundle's path. */
export async function bundle(entry: string, name: string): Promise<string> {
  const outfile = join(OUT, `${name}.mjs`);
  await build({ entryPoints: [join(ROOT, entry)], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  return outfile;
}
