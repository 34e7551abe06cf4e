/**
 * Epochs: 8 random characters of `[A-Za-z0-9_-]` naming one numbering of a
 * channel (safe inside the JSON a Redis script writes). The Redis publish
 * script is handed a fresh one on every publish (it keeps it only when it
 * starts a stream), so the random bytes are drawn 4 KiB at a time: one
 * system call per ~680 epochs instead of one per publish.
 */
import { randomBytes } from 'node:crypto';

const BYTES = 6;
const POOL_BYTES = 4096;

let pool = Buffer.alloc(0);
let used = 0;

export function newEpoch(): string {
  if (used + BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES);
    used = 0;
  }
  const epoch = pool.toString('base64url', used, used + BYTES);
  used += BYTES;
  return epoch;
}
