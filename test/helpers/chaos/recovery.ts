/**
 * The recovery clock: samples "what is wrong?" every 25 ms and,
 * for each fault marked, measures how long after it the system was last
 * unhealthy before it became healthy again. A fault with no visible effect
 * recovers in 0 ms. The last fault's window runs until `stop()`.
 */

export interface FaultRecovery {
  label: string;
  /** When the fault was made (ms since the epoch). */
  at: number;
  /** From the fault until healthy for good (within its window); null if it never got healthy again. */
  recoveryMs: number | null;
  /** What was still wrong at the last unhealthy sample, if any. */
  lastProblem?: string;
}

interface Window {
  label: string;
  at: number;
  lastBad: number | undefined;
  lastProblem: string | undefined;
  healthyAgain: number | undefined;
}

const SAMPLE_MS = 25;

export class RecoveryClock {
  private readonly windows: Window[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  /** `problem` is asked every sample (it must be cheap): what is wrong now, or undefined when healthy. */
  constructor(private readonly problem: () => string | undefined) {}

  /** Mark a fault now; samples from here on belong to it. */
  fault(label: string): void {
    this.windows.push({ label, at: Date.now(), lastBad: undefined, lastProblem: undefined, healthyAgain: undefined });
    this.timer ??= setInterval(() => this.sample(), SAMPLE_MS);
  }

  /** Stop sampling; the recovery of every fault marked. */
  stop(): FaultRecovery[] {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return this.windows.map((w) => ({
      label: w.label,
      at: w.at,
      recoveryMs: w.lastBad === undefined ? 0 : w.healthyAgain === undefined ? null : w.healthyAgain - w.at,
      ...(w.lastProblem !== undefined ? { lastProblem: w.lastProblem } : {}),
    }));
  }

  private sample(): void {
    const w = this.windows.at(-1);
    if (!w) return;
    const now = Date.now();
    const problem = this.problem();
    if (problem !== undefined) {
      w.lastBad = now;
      w.lastProblem = problem;
      w.healthyAgain = undefined;
    } else if (w.lastBad !== undefined && w.healthyAgain === undefined) {
      w.healthyAgain = now;
    }
  }
}
