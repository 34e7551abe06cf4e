import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClientError } from '../../src/client/errors.js';
import { Requests, type RequestFrame } from '../../src/client/requests.js';
import { Emitter } from '../../src/client/emitter.js';

describe('client request bookkeeping', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('numbers requests 1, 2, 3… and settles them from replies', async () => {
    const r = new Requests({ timeout: 1000, maxQueued: 10 });
    const sent: RequestFrame[] = [];
    const send = (f: RequestFrame): boolean => (sent.push(f), true);
    const a = r.start({ type: 'publish', channel: 'c', data: 1 }, send);
    const b = r.start({ type: 'ping' }, send);
    expect(sent.map((f) => f.id)).toEqual([1, 2]);
    expect(r.settle(2, { result: undefined })).toBe(true);
    expect(r.settle(1, { error: { code: 'forbidden', message: 'no' } })).toBe(true);
    expect(r.settle(1, { result: {} })).toBe(false);
    await expect(b).resolves.toBeUndefined();
    await expect(a).rejects.toMatchObject({ code: 'forbidden', message: 'no' });
    expect(r.size).toBe(0);
  });

  it('rejects with timeout after the request timeout, queued time included', async () => {
    const r = new Requests({ timeout: 1000, maxQueued: 10 });
    const p = r.start({ type: 'ping' }, undefined);
    const check = expect(p).rejects.toMatchObject({ code: 'timeout' });
    vi.advanceTimersByTime(999);
    expect(r.size).toBe(1);
    vi.advanceTimersByTime(1);
    await check;
    // A timed-out queued request is not sent later.
    const sent: RequestFrame[] = [];
    r.flush((f) => (sent.push(f), true));
    expect(sent).toEqual([]);
  });

  it('queues while offline up to maxQueued, then rejects with queue_full; flush sends in order', async () => {
    const r = new Requests({ timeout: 1000, maxQueued: 2 });
    const p1 = r.start({ type: 'publish', channel: 'c', data: 1 }, undefined);
    const p2 = r.start({ type: 'publish', channel: 'c', data: 2 }, () => false);
    const p3 = r.start({ type: 'publish', channel: 'c', data: 3 }, undefined);
    await expect(p3).rejects.toBeInstanceOf(ClientError);
    await expect(p3).rejects.toMatchObject({ code: 'queue_full' });
    const sent: RequestFrame[] = [];
    r.flush((f) => (sent.push(f), true));
    expect(sent.map((f) => (f as { data: number }).data)).toEqual([1, 2]);
    r.settle(sent[0]!.id, { result: { offset: 1 } });
    r.settle(sent[1]!.id, { result: { offset: 2 } });
    await expect(p1).resolves.toEqual({ offset: 1 });
    await expect(p2).resolves.toEqual({ offset: 2 });
  });

  it('a non-queueable request is rejected with disconnected when it cannot be sent', async () => {
    const r = new Requests({ timeout: 1000, maxQueued: 2 });
    await expect(r.start({ type: 'unsubscribe', channel: 'c' }, undefined, false)).rejects.toMatchObject({ code: 'disconnected' });
    expect(r.size).toBe(0);
  });

  it('a dropped connection rejects what was sent; queued requests wait unless told otherwise', async () => {
    const r = new Requests({ timeout: 1000, maxQueued: 10 });
    const sentOne = r.start({ type: 'ping' }, () => true);
    const queued = r.start({ type: 'ping' }, undefined);
    r.rejectAll('gone', false);
    await expect(sentOne).rejects.toMatchObject({ code: 'disconnected' });
    expect(r.size).toBe(1);
    r.rejectAll('gone for good', true);
    await expect(queued).rejects.toMatchObject({ code: 'disconnected', message: 'gone for good' });
  });
});

describe('client emitter', () => {
  class E extends Emitter<{ a: number; error: string }> {
    fire(n: number): void {
      this.emit('a', n);
    }
    protected override listenerFailed(): void {
      this.emit('error', 'listener failed');
    }
  }

  it('on/once/off, and a throwing listener neither stops the others nor escapes', () => {
    const e = new E();
    const got: string[] = [];
    const off = e.on('a', (n) => got.push(`on${n}`));
    e.once('a', (n) => got.push(`once${n}`));
    e.on('a', () => {
      throw new Error('boom');
    });
    e.on('error', (m) => got.push(m));
    e.fire(1);
    off();
    e.fire(2);
    expect(got).toEqual(['on1', 'once1', 'listener failed', 'listener failed']);
    expect(e.listenerCount('a')).toBe(1);
  });
});
