// The baseline of `--baseline <dir>`: another checkout of Switchboard,
// already built, whose nodes run the idle and broadcast scenarios beside
// this checkout's in the same run, so that a change is measured against
// the commit before it on the same machine at the same time.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commit } from '../lib/report.js';

export interface Baseline {
  /** The checkout's folder, absolute. */
  dir: string;
  /** Its `bin/switchboard.js`, which the baseline nodes run. */
  bin: string;
  commit: string;
  /** Its work tree had uncommitted changes. */
  dirty: boolean;
  /** The commit's first 7 digits, for labels. */
  short: string;
}

/** The checkout at `dir`, checked to be built (bin/ and dist/ present) so that no scenario starts nodes that cannot run. */
export function openBaseline(dir: string): Baseline {
  const abs = resolve(dir);
  const bin = join(abs, 'bin', 'switchboard.js');
  for (const need of [bin, join(abs, 'dist', 'server', 'cli.js')]) {
    if (!existsSync(need)) throw new Error(`--baseline ${dir}: ${need} is missing (a built checkout of Switchboard: run npm run build there)`);
  }
  const at = commit(abs);
  if (at.commit === 'unknown') throw new Error(`--baseline ${dir}: not a git checkout`);
  return { dir: abs, bin, ...at, short: at.commit.slice(0, 7) };
}
