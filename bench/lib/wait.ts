// Sleeping and bounded polling, for every harness and its child processes.
import { setTimeout as delay } from 'node:timers/promises';

/** Resolves after `ms` (at once for zero or less). */
export const sleep = (ms: number): Promise<void> => delay(Math.max(0, ms));

/** Polls `ok` every `everyMs` until it holds (true) or `timeoutMs` has passed (false). */
export async function waitUntil(ok: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ok()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** As `waitUntil`, but a wait that runs out throws, naming `what` and the state `status` describes. */
export async function waitOrThrow(what: string, ok: () => boolean, timeoutMs: number, status: () => string = () => ''): Promise<void> {
  if (!(await waitUntil(ok, timeoutMs))) throw new Error(`${what}: not done within ${timeoutMs} ms${status() ? ` (${status()})` : ''}`);
}
