/**
 * Memory stays bounded under hostile input (issue 6): tens of thousands of
 * hostile frames and API calls, over connections that each end badly
 * (4008, 1009, abrupt close), must leave the node's heap where it was and
 * no per-connection state behind. The heap is read after a full GC in this
 * process, where the node runs; the clients hold nothing between rounds.
 *
 * Bounded pools of channels and users are used on purpose: history is kept
 * per channel by design (100 messages for 5 minutes, 1000 for a personal
 * channel), so distinct names cost memory until they expire; see
 * docs/protocol.md "Hostile input".
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { SwitchboardNode } from '../../src/server/node.js';
import { useNodes } from '../helpers/fixture.js';
import { hostileInput, nestedJson, type Input } from './arbitraries.js';
import { send } from './http.js';
import { watchProcess } from './watch.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const MiB = 1024 * 1024;
const CHANNELS = Array.from({ length: 40 }, (_, i) => `pool-${i}`);
const USERS = Array.from({ length: 10 }, (_, i) => `victim-${i}`);
const MAX_SUBSCRIPTIONS = 30;
const MAX_FRAME = 16 * 1024;
/** Hostile connections per round; a quarter of them end each way. */
const SESSIONS = 32;

const watch = watchProcess();
afterEach(() => {
  expect(watch.problems()).toEqual([]);
});
const { node } = useNodes();

type Ending = 'abuse' | 'oversize' | 'close' | 'terminate';

/** Frames counted by a connection, and its close. */
interface Outcome {
  frames: number;
  code: number;
}

let ids = 1;
/** The structured part of a hostile session: every frame is well formed JSON, most of them refused. */
function plan(user: string, rnd: () => number): string[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const frames: string[] = [];
  for (let i = 0; i < MAX_SUBSCRIPTIONS + 10; i++) frames.push(JSON.stringify({ type: 'subscribe', id: ids++, channel: CHANNELS[i % CHANNELS.length] }));
  for (let i = 0; i < 40; i++) frames.push(JSON.stringify({ type: 'subscribe', id: ids++, channel: `user:${pick(USERS)}` }));
  for (let i = 0; i < 60; i++) frames.push(JSON.stringify({ type: 'ack', channel: `ack-${Math.floor(rnd() * 1e9)}`, offset: Math.floor(rnd() * 1e6) }));
  for (let i = 0; i < 20; i++) frames.push(JSON.stringify({ type: 'ack', channel: `user:${user}`, offset: Math.floor(rnd() * 1e6) }));
  for (let i = 0; i < 60; i++) frames.push(JSON.stringify({ type: 'publish', id: ids++, channel: pick(CHANNELS), data: { i, pad: 'x'.repeat(100) } }));
  for (let i = 0; i < 20; i++) frames.push(JSON.stringify({ type: 'send', id: ids++, user: pick(USERS), data: { i } }));
  for (let i = 0; i < 20; i++) frames.push(JSON.stringify({ type: 'unsubscribe', id: ids++, channel: pick(CHANNELS) }));
  for (let i = 0; i < 9; i++) frames.push(`{"type":"publish","id":${ids++},"channel":"a","data":${nestedJson(40 + i * 100)}}`);
  frames.push('{not json');
  return frames;
}

const PLAN_LENGTH = plan('count', prng(1)).length;

/** One hostile connection: the plan (answered in full), then fuzz until the ending closes it. */
function hostileSession(port: number, user: string, fuzz: Input[], ending: Ending, rnd: () => number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?user=${user}`);
    let frames = 0;
    let fence = -1;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`session of ${user} did not end within 30 s`));
    }, 30_000);
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ frames, code });
    });
    ws.on('error', () => undefined);
    const finish = () => {
      if (ending === 'abuse') {
        // Fuzz (some of it malformed), then malformed frames until the node closes with 4008.
        for (const input of fuzz) {
          if (input.kind === 'text') ws.send(input.text);
          else ws.send(input.bytes, { binary: true });
        }
        for (let i = 0; i < 11; i++) ws.send('[]');
      } else if (ending === 'oversize') {
        ws.send(`{"type":"publish","id":1,"channel":"a","data":"${'x'.repeat(MAX_FRAME)}"}`);
      } else if (ending === 'close') {
        ws.close(1000);
      } else {
        ws.terminate();
      }
    };
    ws.on('message', (data) => {
      frames++;
      const f = JSON.parse(String(data)) as { type: string; id?: number };
      if (f.type === 'welcome') {
        for (const frame of plan(user, rnd)) ws.send(frame);
        fence = ids++;
        ws.send(JSON.stringify({ type: 'ping', id: fence }));
      } else if (f.type === 'pong' && f.id === fence) {
        finish();
      }
    });
  });
}

/** Hostile API calls: no key, wrong key, invalid UTF-8, deep nesting, oversized, wrong types, and some valid ones. */
function hostileCall(port: number, i: number, rnd: () => number): Promise<number> {
  const auth = { authorization: 'Bearer test-key', 'content-type': 'application/json' };
  const body = (s: string | Uint8Array) => (typeof s === 'string' ? new TextEncoder().encode(s) : s);
  const channel = CHANNELS[i % CHANNELS.length];
  const calls = [
    () => send(port, { method: 'POST', path: '/api/publish', body: body('{"channel":"a","data":1}') }),
    () => send(port, { method: 'POST', path: '/api/publish', headers: { authorization: `Bearer k${rnd()}` }, body: body('{}') }),
    () => send(port, { method: 'POST', path: '/api/publish', headers: auth, body: Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]) }),
    () => send(port, { method: 'POST', path: '/api/send', headers: auth, body: body(`{"user":"x","data":${nestedJson(5000, 'object')}}`) }),
    () => send(port, { method: 'POST', path: '/api/broadcast', headers: auth, body: body(`{"channels":["${'y'.repeat(70_000)}"],"data":1}`) }),
    () => send(port, { method: 'POST', path: '/api/broadcast', headers: auth, body: body(`{"channels":${JSON.stringify(CHANNELS)},"data":{"i":${i}}}`) }),
    () => send(port, { method: 'POST', path: '/api/disconnect', headers: auth, body: body(`{"user":${Math.floor(rnd() * 100)},"code":"x"}`) }),
    () => send(port, { method: 'GET', path: `/api/history/${channel}?since=%ZZ&limit=-1`, headers: auth }),
    () => send(port, { method: 'GET', path: `/api/users/%C0%80${i}`, headers: auth }),
    () => send(port, { method: 'POST', path: '/api/send', headers: auth, body: body(`{"user":"victim-${i % USERS.length}","data":{"i":${i}}}`) }),
  ];
  return (calls[i % calls.length] as () => Promise<{ status: number }>)().then((r) => r.status);
}

/** xorshift: the same hostile workload in every round, without Math.random's state. */
function prng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

interface RoundStats {
  frames: number;
  calls: number;
  codes: Record<number, number>;
}

async function round(n: SwitchboardNode, r: number): Promise<RoundStats> {
  const rnd = prng(r + 1);
  const endings: Ending[] = ['abuse', 'oversize', 'close', 'terminate'];
  const sessions = Array.from({ length: SESSIONS }, (_, i) =>
    hostileSession(n.port, `hostile-${r}-${i}`, fc.sample(hostileInput, { numRuns: 200, seed: r * 100 + i }), endings[i % endings.length] as Ending, rnd),
  );
  const codes: Record<number, number> = {};
  let calls = 0;
  for (let batch = 0; batch < 15; batch++) {
    const statuses = await Promise.all(Array.from({ length: 40 }, (_, i) => hostileCall(n.port, batch * 40 + i, rnd)));
    for (const s of statuses) codes[s] = (codes[s] ?? 0) + 1;
    calls += statuses.length;
  }
  const outcomes = await Promise.all(sessions);
  for (const o of outcomes) codes[o.code] = (codes[o.code] ?? 0) + 1;
  // Frames sent per session: the plan, the fence, and for 'abuse' the fuzz and eleven malformed.
  const sent = outcomes.length * (PLAN_LENGTH + 1) + outcomes.filter((_, i) => i % 4 === 0).length * (200 + 11);
  return { frames: sent, calls, codes };
}

async function nodeCounts(n: SwitchboardNode): Promise<{ connections: number; subscriptions: number }> {
  const res = await send(n.port, { method: 'GET', path: '/api/nodes', headers: { authorization: 'Bearer test-key' } });
  const me = (res.json as { nodes: Array<{ id: string; connections: number; subscriptions: number }> }).nodes.find((x) => x.id === n.id);
  if (!me) throw new Error('node not listed');
  return { connections: me.connections, subscriptions: me.subscriptions };
}

async function settled(n: SwitchboardNode): Promise<{ connections: number; subscriptions: number }> {
  return vi
    .waitUntil(
      async () => {
        const counts = await nodeCounts(n);
        if (counts.connections === 0 && counts.subscriptions === 0) return counts;
      },
      { timeout: 15_000, interval: 20 },
    )
    .catch(() => nodeCounts(n)); // the caller's assertion says what is left
}

describe('memory under hostile input', () => {
  it('stays within 4 MiB of heap over ~40k hostile frames and ~2.4k hostile API calls, and frees every connection', async () => {
    const n = await node({
      // Personal channels keep 100 messages here (1000 by default), so that the warm-up fills their rings.
      namespaces: { user: { historySize: 100, historyTtl: 86_400, presence: true, publish: true, private: false } },
      limits: { maxMessagesPerSecond: 1e6, maxSubscribesPerSecond: 1e6, maxConnectionsPerIpPerSecond: 0, maxSubscriptions: MAX_SUBSCRIPTIONS, maxFrameBytes: MAX_FRAME, maxBodyBytes: 64 * 1024 },
    });
    // Warm-up: fills the bounded pools' history rings (100 per channel, 1000 per personal channel) and the JIT.
    for (let r = 0; r < 2; r++) await round(n, r);
    expect(await settled(n)).toEqual({ connections: 0, subscriptions: 0 });
    const before = heapUsed();
    const rssBefore = process.memoryUsage().rss;
    let frames = 0;
    let calls = 0;
    const codes: Record<number, number> = {};
    for (let r = 2; r < 6; r++) {
      const s = await round(n, r);
      frames += s.frames;
      calls += s.calls;
      for (const [k, v] of Object.entries(s.codes)) codes[Number(k)] = (codes[Number(k)] ?? 0) + v;
    }
    const counts = await settled(n);
    const after = heapUsed();
    const growth = after - before;
    const summary =
      `hostile load: ${frames} frames, ${calls} API calls; heap ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB ` +
        `(${growth >= 0 ? '+' : ''}${(growth / MiB).toFixed(2)} MiB), rss ${(rssBefore / MiB).toFixed(0)} → ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB; ` +
        `answers ${JSON.stringify(codes)}; left ${JSON.stringify(counts)}`;
    console.log(summary);
    expect(frames, summary).toBeGreaterThan(30_000);
    // Every connection ended the way its ending asked for, and the API refused what it should.
    expect(codes[4008], summary).toBe(SESSIONS);
    expect(codes[1009], summary).toBe(SESSIONS);
    expect(codes[500], summary).toBeUndefined();
    expect(codes[401], summary).toBeGreaterThan(0);
    expect(codes[413], summary).toBeGreaterThan(0);
    expect(counts, summary).toEqual({ connections: 0, subscriptions: 0 });
    for (const c of CHANNELS.slice(0, 5)) {
      expect((await send(n.port, { method: 'GET', path: `/api/presence/${c}`, headers: { authorization: 'Bearer test-key' } })).json).toEqual({ members: [] });
    }
    const metrics = (await send(n.port, { method: 'GET', path: '/metrics' })).text;
    expect(metrics).toMatch(/^switchboard_connections\{[^}]*\} 0$/m);
    expect(metrics).toMatch(/^switchboard_subscriptions\{[^}]*\} 0$/m);
    expect(metrics).not.toMatch(/switchboard_errors_total\{[^}]*code="internal"/);
    expect(growth, summary).toBeLessThan(4 * MiB);
  }, 120_000);
});
