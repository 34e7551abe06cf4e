// Preloaded (`node --expose-gc --import probe.mjs …`) into every server under
// test, Switchboard included, so that all three are measured the same way
// from inside: on SIGUSR2 it forces two full GCs and writes
// `process.memoryUsage()` to `$PEERS_PROBE_DIR/<pid>.json` (written to a
// temporary name, then renamed, so the reader never sees half a file).
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.PEERS_PROBE_DIR;
const gc = (globalThis as { gc?: () => void }).gc;
if (dir) {
  process.on('SIGUSR2', () => {
    gc?.();
    gc?.();
    const file = join(dir, `${process.pid}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify({ ...process.memoryUsage(), gc: gc !== undefined, at: Date.now() }));
    renameSync(`${file}.tmp`, file);
  });
}
