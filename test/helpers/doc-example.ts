/**
 * A TypeScript example taken from the docs, checked and made runnable: it
 * is type-checked alone under strict settings (Node's types, the package
 * resolved as a user would resolve it) and compiled to an ES module beside it.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transform } from 'esbuild';
import { ROOT } from './markdown.js';

/**
 * Write `source` to `<dir>/<name>.ts`, type-check it and compile it to
 * `<dir>/<name>.mjs`. Returns what `tsc` printed ('' when it type-checks)
 * and the path of the module. `dir` must lie inside the package (e.g.
 * `.scratch/`), so that `switchboard/…` imports resolve to this build.
 */
export async function prepareExample(dir: string, name: string, source: string): Promise<{ tsc: string; module: string }> {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, source);
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--noUncheckedIndexedAccess', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node', '--skipLibCheck', file],
    { cwd: ROOT, encoding: 'utf8' },
  );
  const { code } = await transform(source, { loader: 'ts', format: 'esm', target: 'node20' });
  const module = join(dir, `${name}.mjs`);
  writeFileSync(module, code);
  return { tsc: tsc.stdout + tsc.stderr, module };
}
