/**
 * The figures of each chaos scenario: one line on the console, and an entry
 * in `.test-results/chaos.json` (keyed by scenario, so a run replaces the
 * previous run's entry). Scenario files run in parallel workers, so the JSON
 * file is updated under a lock file.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Accounting } from './accounting.js';
import type { FaultRecovery } from './recovery.js';
import type { PublisherStats } from './paced-publisher.js';

const DIR = fileURLToPath(new URL('../../../.test-results/', import.meta.url));
export const RESULTS_FILE = `${DIR}chaos.json`;
const LOCK = `${DIR}chaos.json.lock`;
/** A lock older than this was left by a dead worker. */
const STALE_LOCK_MS = 10_000;

export interface ScenarioFigure {
  scenario: string;
  /** Messages acknowledged with a 2xx. */
  published: number;
  /** Distinct messages delivered (after de-duplication by offset). */
  delivered: number;
  lost: number;
  /** Lost, but the app was told (`recovered: false`). */
  lostTold: number;
  duplicates: number;
  sdkDuplicates: number;
  outOfOrder: number;
  /** `recovered: false` notices the app got. */
  resets: number;
  /** The worst recovery among the scenario's faults; null if one never recovered. */
  recoveryMs: number | null;
  faults: FaultRecovery[];
  publisher: PublisherStats;
  durationMs: number;
  /** ISO date of the run. */
  date: string;
  /** Scenario-specific counts (e.g. slow consumers closed with 4101). */
  notes?: Record<string, number | string>;
}

export function figureOf(
  scenario: string,
  acc: Accounting,
  faults: FaultRecovery[],
  publisher: PublisherStats,
  startedAt: number,
  notes?: Record<string, number | string>,
): ScenarioFigure {
  const recoveries = faults.map((f) => f.recoveryMs);
  return {
    scenario,
    published: acc.published,
    delivered: acc.delivered,
    lost: acc.lost,
    lostTold: acc.lostTold,
    duplicates: acc.duplicates,
    sdkDuplicates: acc.sdkDuplicates,
    outOfOrder: acc.outOfOrder,
    resets: acc.resets,
    recoveryMs: recoveries.includes(null) ? null : Math.max(0, ...(recoveries as number[])),
    faults,
    publisher,
    durationMs: Date.now() - startedAt,
    date: new Date().toISOString(),
    ...(notes ? { notes } : {}),
  };
}

/** The one-line summary printed for a scenario. */
export function line(f: ScenarioFigure): string {
  const notes = f.notes ? `, ${Object.entries(f.notes).map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
  const worst = [...f.faults].sort((x, y) => (y.recoveryMs ?? Infinity) - (x.recoveryMs ?? Infinity))[0];
  const why = worst?.lastProblem !== undefined ? ` (until: ${worst.lastProblem})` : '';
  return (
    `chaos ${f.scenario}: published ${f.published}, delivered ${f.delivered}, lost ${f.lost} (told ${f.lostTold}), ` +
    `duplicates ${f.duplicates}, out of order ${f.outOfOrder}, resets ${f.resets}, ` +
    `recovery ${f.recoveryMs ?? 'never'} ms${why}, retries ${f.publisher.retries}, ${f.durationMs} ms${notes}`
  );
}

function withLock(fn: () => void): void {
  mkdirSync(DIR, { recursive: true });
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      closeSync(openSync(LOCK, 'wx'));
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { force: true });
      } catch {
        // gone meanwhile
      }
      if (Date.now() > deadline) throw new Error(`could not lock ${LOCK}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    fn();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

/** Print the figure's line and store it in `.test-results/chaos.json`. */
export function report(f: ScenarioFigure): void {
  record(f, line(f));
}

/**
 * Print `text` and store `f` in `.test-results/chaos.json` under its
 * scenario: for scenarios whose figures are not the publisher's (e.g. the
 * webhook events of `webhook-churn.test.ts`).
 */
export function record(f: { scenario: string; date: string }, text: string): void {
  console.log(text);
  withLock(() => {
    let doc: { command: string; updated: string; scenarios: Record<string, unknown> } = {
      command: 'npx vitest run test/chaos',
      updated: f.date,
      scenarios: {},
    };
    try {
      const parsed = JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as typeof doc;
      if (parsed && typeof parsed.scenarios === 'object') doc = parsed;
    } catch {
      // first run, or a damaged file: start afresh
    }
    doc.updated = f.date;
    doc.scenarios[f.scenario] = f;
    const tmp = `${RESULTS_FILE}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
    renameSync(tmp, RESULTS_FILE);
  });
}
