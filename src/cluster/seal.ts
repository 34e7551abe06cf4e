/**
 * Authentication of control messages with the cluster secret
 * (`--cluster-secret`). A sealed payload is
 * `sb1 <timestamp ms> <nonce> <hex HMAC-SHA256> <json>`, the MAC taken over
 * `<timestamp> <nonce> <json>` with the first secret. A node opens it with
 * any of its secrets (so that a secret can be rolled node by node), refuses
 * one older or newer than the replay window, and one whose MAC it saw
 * within the window (a replay). Without secrets payloads are plain JSON, as
 * they always were.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ControlRejectReason } from './validate.js';

const PREFIX = 'sb1 ';
/** How far a sealed message's timestamp may be from this node's clock. */
export const REPLAY_WINDOW_MS = 30_000;
/** MACs remembered to refuse replays; past it the oldest are forgotten early. */
const MAX_SEEN = 100_000;

export type OpenedControl = { ok: true; json: string } | { ok: false; reason: ControlRejectReason; detail: string };

export class ControlSeal {
  private readonly keys: Buffer[];
  /** MAC (hex) → timestamp, in arrival order: within the window, a MAC seen twice is a replay. */
  private readonly seen = new Map<string, number>();

  /** `secrets`: the first signs, any opens; none: no sealing. */
  constructor(secrets: readonly string[] = [], private readonly now: () => number = Date.now) {
    this.keys = secrets.map((s) => Buffer.from(s, 'utf8'));
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** The payload to send for `json`. */
  seal(json: string): string {
    const key = this.keys[0];
    if (!key) return json;
    const head = `${this.now()} ${randomBytes(12).toString('hex')}`;
    return `${PREFIX}${head} ${mac(key, `${head} ${json}`).toString('hex')} ${json}`;
  }

  /** The JSON of a received payload, or why it is refused. Never throws. */
  open(payload: string): OpenedControl {
    if (!this.enabled) return { ok: true, json: payload };
    if (!payload.startsWith(PREFIX)) return { ok: false, reason: 'unsigned', detail: 'no cluster signature' };
    const parts = splitSealed(payload.slice(PREFIX.length));
    if (!parts) return { ok: false, reason: 'unsigned', detail: 'malformed cluster signature' };
    const { ts, nonce, macHex, json } = parts;
    const given = Buffer.from(macHex, 'hex');
    const signed = `${ts} ${nonce} ${json}`;
    if (given.length !== 32 || !this.keys.some((key) => timingSafeEqual(mac(key, signed), given))) {
      return { ok: false, reason: 'bad_signature', detail: 'cluster signature does not match' };
    }
    const at = Number(ts);
    const now = this.now();
    if (Math.abs(now - at) > REPLAY_WINDOW_MS) return { ok: false, reason: 'stale', detail: 'outside the replay window' };
    this.forget(now);
    if (this.seen.has(macHex)) return { ok: false, reason: 'replayed', detail: 'seen before' };
    if (this.seen.size >= MAX_SEEN) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(macHex, at);
    return { ok: true, json };
  }

  /** Drop MACs old enough that the window refuses them anyway (arrival order is close to timestamp order). */
  private forget(now: number): void {
    for (const [key, at] of this.seen) {
      if (now - at <= REPLAY_WINDOW_MS) return;
      this.seen.delete(key);
    }
  }
}

function mac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** `<ts> <nonce> <mac> <json>`, with a decimal timestamp and hex nonce and MAC; undefined when not. */
function splitSealed(rest: string): { ts: string; nonce: string; macHex: string; json: string } | undefined {
  const a = rest.indexOf(' ');
  const b = rest.indexOf(' ', a + 1);
  const c = rest.indexOf(' ', b + 1);
  if (a < 0 || b < 0 || c < 0) return undefined;
  const ts = rest.slice(0, a);
  const nonce = rest.slice(a + 1, b);
  const macHex = rest.slice(b + 1, c);
  if (!/^\d{1,16}$/.test(ts) || !/^[0-9a-f]{1,64}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(macHex)) return undefined;
  return { ts, nonce, macHex, json: rest.slice(c + 1) };
}
