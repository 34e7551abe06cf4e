import { describe, expect, it } from 'vitest';
import { applyRecovery, StreamCursor } from '../../src/client/cursor.js';
import type { Publication } from '../../src/protocol/index.js';

const pub = (offset: number | undefined, epoch = 'e1', data: unknown = offset): Publication =>
  offset === undefined ? { channel: 'c', data } : { channel: 'c', data, offset, epoch };

describe('client de-duplication (StreamCursor)', () => {
  it('accepts increasing offsets and drops repeats and older ones in the same epoch', () => {
    const c = new StreamCursor();
    const got = [1, 2, 2, 3, 1, 5, 4, 5, 6].filter((o) => c.accept(pub(o)));
    expect(got).toEqual([1, 2, 3, 5, 6]);
    expect(c.position).toEqual({ offset: 6, epoch: 'e1' });
  });

  it('a new epoch resets the numbering', () => {
    const c = new StreamCursor();
    expect(c.accept(pub(10, 'e1'))).toBe(true);
    expect(c.accept(pub(1, 'e2'))).toBe(true);
    expect(c.accept(pub(1, 'e2'))).toBe(false);
    expect(c.accept(pub(2, 'e2'))).toBe(true);
    expect(c.position).toEqual({ offset: 2, epoch: 'e2' });
  });

  it('always delivers messages without an offset (channels without history)', () => {
    const c = new StreamCursor();
    expect(c.accept(pub(undefined))).toBe(true);
    expect(c.accept(pub(undefined))).toBe(true);
    expect(c.position).toBeUndefined();
  });

  it('advanceTo moves only forward in the same epoch, and sets an unknown position', () => {
    const c = new StreamCursor();
    c.advanceTo(5, 'e1');
    expect(c.position).toEqual({ offset: 5, epoch: 'e1' });
    c.advanceTo(3, 'e1');
    expect(c.position).toEqual({ offset: 5, epoch: 'e1' });
    c.advanceTo(9, 'e1');
    expect(c.position).toEqual({ offset: 9, epoch: 'e1' });
    c.advanceTo(2, 'other');
    expect(c.position).toEqual({ offset: 9, epoch: 'e1' });
    c.advanceTo(undefined, undefined);
    expect(c.position).toEqual({ offset: 9, epoch: 'e1' });
    c.reset();
    expect(c.position).toBeUndefined();
  });

  it('offers no recovery position without an epoch', () => {
    const c = new StreamCursor();
    expect(c.since).toBeUndefined();
    c.advanceTo(0, '');
    expect(c.position).toEqual({ offset: 0, epoch: '' });
    expect(c.since).toBeUndefined();
    c.reset(4, 'e');
    expect(c.since).toEqual({ offset: 4, epoch: 'e' });
  });

  it('position is a copy', () => {
    const c = new StreamCursor();
    c.accept(pub(1));
    const p = c.position as { offset: number };
    p.offset = 100;
    expect(c.position?.offset).toBe(1);
  });
});

describe('applying a (re)subscription result', () => {
  function run(cursor: StreamCursor, since: { offset: number; epoch: string } | undefined, result: Parameters<typeof applyRecovery>[2], buffered: Publication[]) {
    const events: string[] = [];
    const outcome = applyRecovery(cursor, since, result, buffered, {
      reset: () => events.push('reset'),
      ready: (o) => events.push(`ready:${o.wasRecovering}:${o.recovered}`),
      deliver: (p) => events.push(`msg:${String(p.offset)}`),
    });
    return { events, outcome };
  }

  it('delivers recovered messages, then buffered live ones, de-duplicated, after ready', () => {
    const c = new StreamCursor();
    c.accept(pub(3));
    const { events } = run(c, { offset: 3, epoch: 'e1' }, { offset: 6, epoch: 'e1', recovered: true, messages: [pub(4), pub(5), pub(6)] }, [
      pub(6),
      pub(7),
    ]);
    expect(events).toEqual(['ready:true:true', 'msg:4', 'msg:5', 'msg:6', 'msg:7']);
    expect(c.position).toEqual({ offset: 7, epoch: 'e1' });
  });

  it('on failed recovery: reset first, position restarts at the server top, stale buffered messages dropped', () => {
    const c = new StreamCursor();
    c.accept(pub(3));
    const { events, outcome } = run(c, { offset: 3, epoch: 'e1' }, { offset: 50, epoch: 'e2', recovered: false, messages: [] }, [
      pub(50, 'e2'),
      pub(51, 'e2'),
    ]);
    expect(outcome).toEqual({ wasRecovering: true, recovered: false });
    expect(events).toEqual(['reset', 'ready:true:false', 'msg:51']);
    expect(c.position).toEqual({ offset: 51, epoch: 'e2' });
  });

  it('a first subscription is not a recovery and moves the position up to the top', () => {
    const c = new StreamCursor();
    const { events, outcome } = run(c, undefined, { offset: 20, epoch: 'e1', recovered: true, messages: [] }, []);
    expect(outcome).toEqual({ wasRecovering: false, recovered: false });
    expect(events).toEqual(['ready:false:false']);
    expect(c.position).toEqual({ offset: 20, epoch: 'e1' });
  });

  it('a first connection that the server resumed from an acknowledged position delivers what it replays', () => {
    const c = new StreamCursor();
    const { events } = run(c, undefined, { offset: 6, epoch: 'e1', recovered: true, messages: [pub(5), pub(6)] }, [pub(6), pub(7)]);
    expect(events).toEqual(['ready:false:false', 'msg:5', 'msg:6', 'msg:7']);
    expect(c.position).toEqual({ offset: 7, epoch: 'e1' });
  });

  it('a first connection told that the server could not resume it resets (history was lost)', () => {
    const c = new StreamCursor();
    const { events } = run(c, undefined, { offset: 20, epoch: 'e2', recovered: false, messages: [] }, []);
    expect(events).toEqual(['reset', 'ready:false:false']);
    expect(c.position).toEqual({ offset: 20, epoch: 'e2' });
  });
});
