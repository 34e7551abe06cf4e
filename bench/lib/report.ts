// What every harness prints and writes: markdown tables, number formats,
// ratios, the machine description, and result files.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { ROOT } from './paths.js';

/** `v` with `digits` decimals and thousands separators; `none` when it is not finite. */
export const fmt = (v: number, digits = 0, none = 'n/a'): string =>
  Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : none;

/** `a / b` as "2.00×", or n/a when either is missing or the quotient is not finite. */
export const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a / b) ? 'n/a' : `${fmt(a / b, 2)}×`;

/** A markdown table: the first `left` columns aligned left, the rest right. */
export function table(header: string[], rows: string[][], left = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (c: string, i: number): string => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!));
  const line = (cells: string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < left ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The first line a command prints (its version), or 'unknown' (also when it takes longer than `timeoutMs`). */
export function commandVersion(cmd: string, args: string[], timeoutMs = 15_000): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** An installed package's version, or 'unknown'. Read from its folder: a package with `exports` (@platformatic/kafka) does not let `require` reach its package.json. */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The machine a run measured on, with `extra` (versions of what it ran). */
export function machine(extra: Record<string, unknown> = {}): Record<string, unknown> & { loadStart: number[] } {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    ...extra,
    /** 1, 5 and 15-minute load averages at the start; others' work on a shared machine makes the figures noisy. */
    loadStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The commit measured (of this checkout, or of the one at `dir`), and whether its work tree had uncommitted changes. */
export function commit(dir = ROOT): { commit: string; dirty: boolean } {
  return { commit: commandVersion('git', ['-C', dir, 'rev-parse', 'HEAD']), dirty: commandVersion('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no']) !== '' };
}

/**
 * Where a result goes: `out` as given when it is a path (holds a `/`), else
 * `bench/results/<out or fallback><ext>`.
 */
export function resultPath(out: string | undefined, fallback: string, ext: string): string {
  if (out?.includes('/')) return isAbsolute(out) ? `${out}${out.endsWith(ext) ? '' : ext}` : join(process.cwd(), `${out}${out.endsWith(ext) ? '' : ext}`);
  return join(ROOT, 'bench', 'results', `${out ?? fallback}${ext}`);
}

/** Writes `text` to `file`, making its folder; answers the file. */
export function writeResult(file: string, text: string): string {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/** Today, as the results name their files. */
export const today = (): string => new Date().toISOString().slice(0, 10);
