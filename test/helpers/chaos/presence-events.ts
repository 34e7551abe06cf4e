/**
 * The verdict on `online`/`offline` webhook events, as a pure function of
 * what was recorded: the sessions the test opened (when the store surely
 * held each one's entry, and when it may have), and the events the backend
 * accepted, in arrival order. Kept free of I/O so that it can be tested on
 * hand-made records (test/chaos/presence-events.test.ts).
 *
 * The exact number of `online` events of a user is not always known: a
 * user who reconnects before the entry of a dead node's session is dropped
 * never had no session, and a close the store has not applied yet may meet
 * the next open. So the truth is a range: the gaps that must have been seen
 * (between the widest windows) and those that may have been (between the
 * surest ones).
 */
import type { WebhookEvent } from '../../../src/server-sdk/index.js';

/** One session of the test, by the times the store's entry of it existed. */
export interface SessionSpan {
  user: string;
  /** Its entry existed at least from `from` to `until` (the welcome, and when a close or a fault began); absent when the handshake never ended (a fault cut it). */
  sure?: { from: number; until: number };
  /** Its entry existed at most from `from` to `until` (the connect began; the close applied, or the dead node's entries dropped). */
  may: { from: number; until: number };
}

/** An event the backend answered 2xx for, and when it arrived. */
export interface Accepted {
  event: WebhookEvent;
  at: number;
}

export interface PresenceAccounting {
  /** Users the test opened a session for. */
  users: number;
  /** Distinct events (by id). */
  transitions: number;
  /** Deliveries of an id already delivered, identical to the first (allowed). */
  duplicates: number;
  /** An id delivered again with different content. Must be 0. */
  altered: number;
  /** An event of the same type as the user's previous one (a transition lost, or one reported twice under two ids), or a first event that is `offline`. Must be 0. */
  doubled: number;
  /** An event whose `ts` is below the user's previous one. Must be 0. */
  outOfOrder: number;
  /** Users whose last event is not `offline`, or who never got one. Must be 0. */
  notOffline: number;
  /** Users whose count of `online` events is outside what their sessions allow. Must be 0. */
  miscounted: number;
  /** Users whose count of `online` events is known exactly (the range is one number). */
  exact: number;
  /** The longest time from a transition (`ts`) to its first delivery, ms. */
  maxDelayMs: number;
  /** One line per user with a problem, for failure messages. */
  problems: string[];
}

type Window = { from: number; until: number };

/** How many separate stretches `windows` cover (windows that touch are one). */
function stretches(windows: readonly Window[]): Window[] {
  const sorted = [...windows].sort((a, b) => a.from - b.from);
  const out: Window[] = [];
  for (const w of sorted) {
    const last = out.at(-1);
    if (last && w.from <= last.until) last.until = Math.max(last.until, w.until);
    else out.push({ ...w });
  }
  return out;
}

/** The fewest and the most `online` events `spans` (one user's) can make. */
export function onlineRange(spans: readonly SessionSpan[]): { min: number; max: number } {
  const sure = spans.filter((s) => s.sure !== undefined);
  // Each widest stretch holding a session that surely existed holds at least one stretch of its own.
  const min = stretches(spans.map((s) => s.may)).filter((w) => sure.some((s) => s.may.from >= w.from && s.may.until <= w.until)).length;
  // Narrowing only splits; a session that may not have existed adds at most one stretch.
  const max = stretches(sure.map((s) => s.sure!)).length + (spans.length - sure.length);
  return { min, max };
}

/** Account for every user of `spans` and `accepted`. */
export function accountPresence(spans: readonly SessionSpan[], accepted: readonly Accepted[]): PresenceAccounting {
  const acc: PresenceAccounting = {
    users: 0,
    transitions: 0,
    duplicates: 0,
    altered: 0,
    doubled: 0,
    outOfOrder: 0,
    notOffline: 0,
    miscounted: 0,
    exact: 0,
    maxDelayMs: 0,
    problems: [],
  };
  const first = new Map<string, string>();
  const byUser = new Map<string, WebhookEvent[]>();
  for (const { event, at } of accepted) {
    if (event.type !== 'online' && event.type !== 'offline') continue;
    const text = JSON.stringify(event);
    const seen = first.get(event.id);
    if (seen !== undefined) {
      if (seen === text) acc.duplicates++;
      else {
        acc.altered++;
        acc.problems.push(`${event.user}: id ${event.id} delivered again with other content`);
      }
      continue;
    }
    first.set(event.id, text);
    acc.transitions++;
    acc.maxDelayMs = Math.max(acc.maxDelayMs, at - event.ts);
    let list = byUser.get(event.user);
    if (!list) byUser.set(event.user, (list = []));
    list.push(event);
  }
  const spansOf = new Map<string, SessionSpan[]>();
  for (const s of spans) {
    let list = spansOf.get(s.user);
    if (!list) spansOf.set(s.user, (list = []));
    list.push(s);
  }
  acc.users = spansOf.size;
  for (const user of new Set([...spansOf.keys(), ...byUser.keys()])) {
    const events = byUser.get(user) ?? [];
    const wrong: string[] = [];
    events.forEach((e, i) => {
      const prev = events[i - 1];
      if (e.type !== (prev?.type === 'online' ? 'offline' : 'online')) {
        acc.doubled++;
        wrong.push(`${e.type} ${e.id} after ${prev ? `${prev.type} ${prev.id}` : 'nothing'}`);
      }
      if (prev && e.ts < prev.ts) {
        acc.outOfOrder++;
        wrong.push(`${e.id} (ts ${e.ts}) after ${prev.id} (ts ${prev.ts})`);
      }
    });
    if (events.at(-1)?.type !== 'offline') {
      acc.notOffline++;
      wrong.push(`ends with ${events.at(-1)?.type ?? 'no event'}`);
    }
    const { min, max } = onlineRange(spansOf.get(user) ?? []);
    const onlines = events.filter((e) => e.type === 'online').length;
    if (min === max) acc.exact++;
    if (onlines < min || onlines > max) {
      acc.miscounted++;
      wrong.push(`${onlines} online events, sessions allow ${min}..${max}`);
    }
    if (wrong.length > 0) acc.problems.push(`${user}: ${wrong.join('; ')} [${events.map((e) => (e.type === 'online' ? '+' : '-')).join('')}]`);
  }
  return acc;
}
