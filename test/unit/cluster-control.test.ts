/**
 * Control messages between nodes are not trusted: forged or malformed ones
 * are refused field by field and counted, the log says so at most once per
 * interval, and with a cluster secret only messages signed with it, fresh
 * and never seen before, are acted on.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/memory-broker.js';
import { Cluster, type ClusterHooks } from '../../src/cluster/cluster.js';
import type { NodeInfo } from '../../src/cluster/messages.js';
import { ControlRejections, REJECTION_LOG_INTERVAL_MS } from '../../src/cluster/rejections.js';
import { ControlSeal, REPLAY_WINDOW_MS } from '../../src/cluster/seal.js';
import { checkControl, type ControlRejectReason } from '../../src/cluster/validate.js';
import { sleep } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
const started: Array<{ cluster: Cluster; broker: MemoryBroker }> = [];

afterEach(async () => {
  for (const { cluster, broker } of started.splice(0)) {
    cluster.stop();
    await broker.close();
  }
});

function info(id: string): NodeInfo {
  return { id, address: `http://${id}:80`, url: `ws://${id}:80/ws`, routing: 'hashring', connections: 0, subscriptions: 0, uptime: 0, ready: true, draining: false };
}

const beat = (from: string, over: Record<string, unknown> = {}) => JSON.stringify({ type: 'heartbeat', from, info: { ...info(from), ...over } });

async function member(bus: MemoryBus, id: string, secrets?: string[], hooks: ClusterHooks = {}): Promise<Cluster> {
  const broker = new MemoryBroker(bus);
  const cluster = new Cluster(id, broker, { heartbeatMs: 50, deadAfterBeats: 3, ...(secrets ? { secrets } : {}) }, () => info(id), async () => 0, log, hooks);
  await broker.start(id, { onPublication: () => undefined, onReadyChange: () => undefined, onControl: (p) => cluster.receive(p) });
  cluster.start();
  started.push({ cluster, broker });
  return cluster;
}

/** A bare broker on the bus that sends whatever it is given: someone with access to the control channel. */
async function forger(bus: MemoryBus): Promise<MemoryBroker> {
  const broker = new MemoryBroker(bus);
  await broker.start('forger', { onPublication: () => undefined, onReadyChange: () => undefined, onControl: () => undefined });
  started.push({ cluster: new Cluster('forger', broker, { heartbeatMs: 50, deadAfterBeats: 3 }, () => info('forger'), async () => 0, log), broker });
  return broker;
}

const ids = (c: Cluster) => c.nodes().map((n) => n.id).sort();

function reasonOf(json: string): ControlRejectReason | 'ok' {
  const r = checkControl(json);
  return r.ok ? 'ok' : r.reason;
}

describe('checkControl', () => {
  it('accepts what nodes send, rebuilt from the checked fields alone', () => {
    const r = checkControl(beat('node-a', { messagesInPerSec: 3.5, latencyP99Ms: 12, broker: 'redis', extra: '<b>x</b>' }));
    expect(r.ok).toBe(true);
    if (!r.ok || r.msg.type !== 'heartbeat') throw new Error('not a heartbeat');
    expect(r.msg.info).toEqual({ ...info('node-a'), messagesInPerSec: 3.5, latencyP99Ms: 12, broker: 'redis' });
    expect(reasonOf(JSON.stringify({ type: 'leave', from: 'node-a-w2' }))).toBe('ok');
    expect(reasonOf(JSON.stringify({ type: 'request', from: 'a', id: 3, request: { kind: 'disconnect', user: 'u1', code: 4000, reason: 'bye' } }))).toBe('ok');
    expect(reasonOf(JSON.stringify({ type: 'response', from: 'a', id: 3, result: 2 }))).toBe('ok');
    expect(reasonOf(JSON.stringify({ type: 'response', from: 'a', id: 3, error: { code: 'unavailable', message: 'x' } }))).toBe('ok');
    const session = '0b6f4a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    expect(reasonOf(JSON.stringify({ type: 'member', from: 'a', frame: { type: 'join', channel: 'room:1', user: 'u1', session } }))).toBe('ok');
  });

  it('refuses hostile node ids, URLs and numbers in heartbeats', () => {
    expect(reasonOf(beat('<img src=x onerror=alert(1)>'))).toBe('invalid');
    expect(reasonOf(beat('a'.repeat(129)))).toBe('invalid');
    expect(reasonOf(beat(''))).toBe('invalid');
    expect(reasonOf(beat('a', { id: '<b>evil</b>' }))).toBe('invalid'); // info.id must be its sender
    expect(reasonOf(beat('a', { url: 'javascript:alert(1)' }))).toBe('invalid');
    expect(reasonOf(beat('a', { url: 'http://evil.example/ws' }))).toBe('invalid');
    expect(reasonOf(beat('a', { url: `ws://h/${'x'.repeat(2100)}` }))).toBe('invalid');
    expect(reasonOf(beat('a', { url: 'ws://user:pw@h/ws' }))).toBe('invalid');
    expect(reasonOf(beat('a', { address: 'file:///etc/passwd' }))).toBe('invalid');
    expect(reasonOf(beat('a', { routing: '<script>' }))).toBe('invalid');
    expect(reasonOf(beat('a', { broker: 'x y' }))).toBe('invalid');
    expect(reasonOf(beat('a', { connections: -1 }))).toBe('invalid');
    expect(reasonOf(beat('a', { connections: 1.5 }))).toBe('invalid');
    expect(reasonOf(beat('a', { connections: '5' }))).toBe('invalid');
    expect(reasonOf(beat('a', { ready: 'yes' }))).toBe('invalid');
    expect(reasonOf(beat('a').replace('"uptime":0', '"uptime":1e999'))).toBe('invalid'); // Infinity
    expect(reasonOf(beat('a').replace('"connections":0', '"connections":0,"messagesInPerSec":-1e999'))).toBe('invalid');
    expect(reasonOf(beat('a', { latencyP50Ms: 1e300 }))).toBe('invalid');
    expect(reasonOf(JSON.stringify({ type: 'heartbeat', from: 'a' }))).toBe('invalid');
  });

  it('refuses malformed payloads, unknown types and bad requests, responses and member frames', () => {
    expect(reasonOf('not json')).toBe('malformed');
    expect(reasonOf('[1,2]')).toBe('malformed');
    expect(reasonOf(JSON.stringify({ from: 'a' }))).toBe('malformed');
    expect(reasonOf(JSON.stringify({ type: 'leave', from: 'a', pad: 'x'.repeat(70_000) }))).toBe('malformed');
    expect(reasonOf(JSON.stringify({ type: 'promote', from: 'a' }))).toBe('invalid');
    const req = (request: unknown, id: unknown = 1) => JSON.stringify({ type: 'request', from: 'a', id, request });
    expect(reasonOf(req({ kind: 'disconnect', user: 'u', code: 4000, reason: '' }, -1))).toBe('invalid');
    expect(reasonOf(req({ kind: 'disconnect', user: 'u', code: 1000, reason: '' }))).toBe('invalid');
    expect(reasonOf(req({ kind: 'disconnect', user: 'u', code: 4000, reason: 'x'.repeat(121) }))).toBe('invalid');
    expect(reasonOf(req({ kind: 'disconnect', user: 'bad user', code: 4000, reason: '' }))).toBe('invalid');
    expect(reasonOf(req({ kind: 'shutdown' }))).toBe('invalid');
    expect(reasonOf(JSON.stringify({ type: 'response', from: 'a', id: 1, error: { code: 1 } }))).toBe('invalid');
    const memberOf = (frame: unknown) => JSON.stringify({ type: 'member', from: 'a', frame });
    expect(reasonOf(memberOf({ type: 'join', channel: 'room 1', user: 'u', session: 's' }))).toBe('invalid');
    expect(reasonOf(memberOf({ type: 'join', channel: 'room', user: '<b>', session: 's' }))).toBe('invalid');
    expect(reasonOf(memberOf({ type: 'join', channel: 'room', user: 'u', session: '<script>' }))).toBe('invalid');
    expect(reasonOf(memberOf({ type: 'kick', channel: 'room', user: 'u', session: 's' }))).toBe('invalid');
  });
});

describe('a cluster receiving forged control messages', () => {
  it('keeps a forged heartbeat out of its view, counts it, and still hears real nodes', async () => {
    const bus = new MemoryBus();
    const rejected: ControlRejectReason[] = [];
    const a = await member(bus, 'a', undefined, { onRejected: (r) => rejected.push(r) });
    const f = await forger(bus);
    await f.sendControl(null, beat('<img src=x onerror=alert(1)>'));
    await f.sendControl(null, beat('fake', { url: 'javascript:alert(1)' }));
    await f.sendControl(null, 'garbage');
    await vi.waitUntil(() => rejected.length === 3, { timeout: 2_000, interval: 5 });
    expect(rejected).toEqual(['invalid', 'invalid', 'malformed']);
    expect(ids(a)).toEqual(['a']);
    await member(bus, 'b');
    await vi.waitUntil(() => a.nodes().length === 2, { timeout: 2_000, interval: 5 });
    expect(ids(a)).toEqual(['a', 'b']);
  });

  it('logs refusals at most once per interval, with how many were refused', () => {
    const lines: Array<Record<string, unknown>> = [];
    const fakeLog = { warn: (obj: Record<string, unknown>) => lines.push(obj) } as unknown as pino.Logger;
    let now = 1_000_000;
    let counted = 0;
    const r = new ControlRejections(fakeLog, () => counted++, () => now);
    for (let i = 0; i < 1000; i++) r.reject('invalid', 'x');
    expect(counted).toBe(1000);
    expect(lines.length).toBe(1);
    now += REJECTION_LOG_INTERVAL_MS;
    r.reject('malformed', 'y');
    expect(lines.length).toBe(2);
    expect(lines[1]).toMatchObject({ reason: 'malformed', refused: 1000 });
  });
});

describe('cluster secret', () => {
  it('seals and opens; refuses no signature, a wrong key, a tampered body, a stale timestamp and a replay', () => {
    let now = 5_000_000;
    const clock = () => now;
    const a = new ControlSeal(['k-one'], clock);
    const b = new ControlSeal(['k-one'], clock);
    const json = JSON.stringify({ type: 'leave', from: 'a' });
    const sealed = a.seal(json);
    expect(sealed).not.toBe(json);
    expect(b.open(sealed)).toEqual({ ok: true, json });
    expect(b.open(sealed)).toMatchObject({ ok: false, reason: 'replayed' });
    expect(b.open(json)).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(b.open('sb1 1 ab cd {}')).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(new ControlSeal(['k-two'], clock).open(a.seal(json))).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(b.open(a.seal(json).replace('"a"', '"b"'))).toMatchObject({ ok: false, reason: 'bad_signature' });
    const old = a.seal(json);
    now += REPLAY_WINDOW_MS + 1;
    expect(b.open(old)).toMatchObject({ ok: false, reason: 'stale' });
    // Without secrets, payloads are plain JSON both ways.
    const plain = new ControlSeal([], clock);
    expect(plain.seal(json)).toBe(json);
    expect(plain.open(json)).toEqual({ ok: true, json });
  });

  it('rolls: a node with [new, old] accepts both, and signs with new', () => {
    const json = '{"type":"leave","from":"a"}';
    const rolling = new ControlSeal(['new', 'old']);
    expect(rolling.open(new ControlSeal(['old']).seal(json)).ok).toBe(true);
    expect(rolling.open(new ControlSeal(['new']).seal(json)).ok).toBe(true);
    expect(new ControlSeal(['new']).open(rolling.seal(json)).ok).toBe(true);
    expect(new ControlSeal(['old']).open(rolling.seal(json)).ok).toBe(false);
  });

  it('nodes with the same secret form a cluster; a node with another or none is kept out, and a forged beat too', async () => {
    const bus = new MemoryBus();
    const rejected: ControlRejectReason[] = [];
    const a = await member(bus, 'a', ['s3cret'], { onRejected: (r) => rejected.push(r) });
    const b = await member(bus, 'b', ['s3cret']);
    const wrong = await member(bus, 'wrong', ['other']);
    const none = await member(bus, 'none');
    const f = await forger(bus);
    await f.sendControl(null, beat('forged'));
    await vi.waitUntil(() => a.nodes().length === 2 && b.nodes().length === 2, { timeout: 2_000, interval: 5 });
    // Pause, not a wait: several beats (50 ms) of the outsiders must go by unheeded.
    await sleep(300);
    expect(ids(a)).toEqual(['a', 'b']);
    expect(ids(b)).toEqual(['a', 'b']);
    expect(ids(wrong)).toEqual(['wrong']);
    expect(ids(none)).toEqual(['none']);
    expect(rejected).toContain('bad_signature');
    expect(rejected).toContain('unsigned');
    // Cluster requests go through too.
    const outcomes = await a.requestAll({ kind: 'disconnect', user: 'u', code: 4000, reason: '' }, 2_000);
    expect(outcomes.map((o) => o.node).sort()).toEqual(['a', 'b']);
    expect(outcomes.every((o) => o.error === undefined)).toBe(true);
  });
});
