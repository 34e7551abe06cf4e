// Preloaded (`node --expose-gc --import probe.mjs …`) into every server under
// test, Switchboard included, so that all three are measured the same way
// from inside:
// - on SIGUSR2 it forces two full GCs and writes `process.memoryUsage()` to
//   `$PEERS_PROBE_DIR/<pid>.json`;
// - on SIGWINCH (no GC) it writes `<pid>.pauses.json`: the GC pauses and the
//   event-loop delay since the last SIGWINCH, then starts over, so a latency
//   tail can be told apart from a server that stalled.
// Files are written to a temporary name, then renamed, so the reader never
// sees half a file.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const dir = process.env.PEERS_PROBE_DIR;
const gc = (globalThis as { gc?: () => void }).gc;

function write(name: string, body: unknown): void {
  const file = join(dir ?? '', name);
  writeFileSync(`${file}.tmp`, JSON.stringify(body));
  renameSync(`${file}.tmp`, file);
}

if (dir) {
  process.on('SIGUSR2', () => {
    gc?.();
    gc?.();
    write(`${process.pid}.json`, { ...process.memoryUsage(), gc: gc !== undefined, at: Date.now() });
  });
  let pauses = { count: 0, totalMs: 0, maxMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      pauses.count++;
      pauses.totalMs += e.duration;
      pauses.maxMs = Math.max(pauses.maxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  process.on('SIGWINCH', () => {
    write(`${process.pid}.pauses.json`, { gc: pauses, loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6 });
    pauses = { count: 0, totalMs: 0, maxMs: 0 };
    delay.reset();
  });
}
