/**
 * Waiting in tests, in one place. A test waits for a condition with vitest:
 * `vi.waitFor` (retry until the check stops throwing) or `vi.waitUntil`
 * (until it returns a truthy value). This file holds what vitest lacks and
 * what the helpers shared with `bench/` (which runs without vitest) need.
 *
 * `sleep` is for a pause that is the point of the test (nothing may arrive
 * within a window, time must pass for a TTL, traffic keeps flowing while a
 * fault lasts); each such call says why in a comment. It is never a stand-in
 * for a condition: wait for the condition instead.
 */
import { within } from '../../src/shared/time.js';

export { sleep } from '../../src/shared/time.js';

/**
 * The next event that `subscribe` reports, at most `timeoutMs` from now:
 * `await nextEvent((l) => client.once('connected', l), 5_000, 'connected')`.
 */
export function nextEvent<A>(subscribe: (listener: (arg: A) => void) => unknown, timeoutMs: number, what: string): Promise<A> {
  return within(new Promise<A>((resolve) => void subscribe(resolve)), timeoutMs, `waiting for ${what}`);
}
