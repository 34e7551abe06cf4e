/**
 * The assertions every chaos scenario ends with, in one place so that no
 * scenario quietly checks less: the load was real and went on after the
 * faults, nothing acknowledged was lost (or only where the app was told),
 * nothing was published twice, order was kept, and the system recovered.
 */
import { expect } from 'vitest';
import type { ScenarioFigure } from './report.js';
import type { ChaosRun } from './scenario.js';

export interface VerdictOptions {
  /** Whether the app may be told `recovered: false` (and lose what it was told about). Default false. */
  resetsAllowed?: boolean;
}

export function expectNothingLost(run: ChaosRun, fig: ScenarioFigure, { resetsAllowed = false }: VerdictOptions = {}): void {
  const problems = run.problems();
  // Real load, and still flowing after the last fault.
  const lastFault = fig.faults.at(-1)?.at ?? run.startedAt;
  expect(fig.published).toBeGreaterThan(300);
  expect(run.ledger.acked.filter((a) => a.at > lastFault).length).toBeGreaterThan(50);
  // Every logical message was eventually acknowledged (retries included), none refused.
  expect(fig.publisher.gaveUp).toBe(0);
  expect(fig.publisher.refused).toBe(0);
  expect(fig.lost, problems).toBe(0);
  if (!resetsAllowed) {
    expect(fig.resets).toBe(0);
    expect(fig.lostTold).toBe(0);
  }
  expect(fig.duplicates, problems).toBe(0);
  expect(fig.sdkDuplicates, problems).toBe(0);
  expect(fig.outOfOrder, problems).toBe(0);
  expect(fig.recoveryMs, 'the system never became healthy again').not.toBeNull();
}
