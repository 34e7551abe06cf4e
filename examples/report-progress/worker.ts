/**
 * The "long job": a fake piece of work in `steps` steps that reports its
 * progress to the user who started it, on their personal channel
 * (`user:<id>`), through the server SDK. Each report's idempotency key is
 * `<job>:<step>`, so a retry — the SDK's own, or a restarted worker's —
 * can never show a step twice.
 */
import type { SwitchboardApi } from '../../src/server-sdk/index.js';

export interface Job {
  id: string;
  user: string;
  /** Reports after the start (0 %): the last one is 100 %. */
  steps: number;
  /** Milliseconds of "work" per step. */
  stepMs: number;
}

/** What the page receives, one per step. */
export interface ProgressMessage {
  type: 'progress';
  job: string;
  step: number;
  steps: number;
  percent: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Run `job`, sending progress 0 → 100 % in order; resolves when 100 % was stored. */
export async function runJob(api: SwitchboardApi, job: Job): Promise<void> {
  for (let step = 0; step <= job.steps; step++) {
    if (step > 0) await sleep(job.stepMs);
    const message: ProgressMessage = {
      type: 'progress',
      job: job.id,
      step,
      steps: job.steps,
      percent: Math.round((step * 100) / job.steps),
    };
    // Awaited one by one: step n+1 is published after step n was stored, so they arrive in order.
    await api.send(job.user, message, { idempotencyKey: `${job.id}:${step}` });
  }
}
