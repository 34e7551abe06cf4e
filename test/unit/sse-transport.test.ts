/**
 * The SSE transport alone: its event ids carry every channel's position and
 * read back only as written; a welcome or subscription writes its event
 * before the messages it recovered, and the id moves past each message only
 * as it is written, so a stream cut in between resumes without a loss.
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { decodeEventId, encodeEventId, SseTransport, sseEvent, type Positions } from '../../src/server/http/sse-transport.js';

/** A response that records what is written. */
function recorder(): { res: ServerResponse; text: () => string; ended: () => boolean } {
  const chunks: string[] = [];
  let ended = false;
  const res = Object.assign(new EventEmitter(), {
    write: (chunk: string) => chunks.push(chunk) > 0,
    end: () => {
      ended = true;
    },
    writableLength: 0,
  }) as unknown as ServerResponse;
  return { res, text: () => chunks.join(''), ended: () => ended };
}

/** The events of a stream's text: name, id (as of the event) and parsed data. */
function events(text: string): Array<{ event: string; id: string; data: Record<string, unknown> }> {
  let id = '';
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
    .map((block) => {
      const fields = new Map(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
      id = fields.get('id') ?? id;
      return { event: fields.get('event') ?? 'message', id, data: JSON.parse(fields.get('data') ?? 'null') as Record<string, unknown> };
    });
}

describe('SSE event text', () => {
  it('has retry, event and id lines only when given, then one data line', () => {
    expect(sseEvent('', '{"a":1}')).toBe('data: {"a":1}\n\n');
    expect(sseEvent('welcome', '{}', 'abc')).toBe('event: welcome\nid: abc\ndata: {}\n\n');
    expect(sseEvent('disconnect', '{}', '', 5000)).toBe('retry: 5000\nevent: disconnect\ndata: {}\n\n');
  });
});

describe('SSE event ids', () => {
  it('round-trip every channel position', () => {
    const positions: Positions = new Map([
      ['news', { offset: 12, epoch: 'e1' }],
      ['user:alice', { offset: 0, epoch: 'x-y_z' }],
    ]);
    const id = encodeEventId(positions);
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeEventId(id)).toEqual(positions);
    expect(encodeEventId(new Map())).toBe('');
  });

  it('refuse anything this node did not write', () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const bad of [
      'not base64 json',
      encode([1, 2]),
      encode(null),
      encode({ news: [-1, 'e'] }),
      encode({ news: [1.5, 'e'] }),
      encode({ news: [1, 'e'.repeat(65)] }),
      encode({ news: [1] }),
      encode({ 'bad name': [1, 'e'] }),
      encode({ news: ['1', 'e'] }),
    ]) {
      expect(decodeEventId(bad), bad).toBeUndefined();
    }
  });
});

describe('SseTransport', () => {
  it('writes a welcome before the messages it recovered, each message carrying the position after it', () => {
    const { res, text } = recorder();
    const positions: Positions = new Map([['user:a', { offset: 1, epoch: 'E' }]]);
    let handshakes = 0;
    const transport = new SseTransport(res, positions, [], () => handshakes++);
    const messages = [2, 3].map((offset) => ({ channel: 'user:a', data: { offset }, offset, epoch: 'E' }));
    transport.send(JSON.stringify({ type: 'welcome', session: 's', node: 'n', user: 'a', channel: 'user:a', offset: 3, epoch: 'E', recovered: true, messages, ping: 25 }));
    transport.send(JSON.stringify({ type: 'ping' }));
    const got = events(text());
    expect(got.map((e) => e.event)).toEqual(['welcome', 'message', 'message', 'ping']);
    expect(got[0]!.data).not.toHaveProperty('messages');
    // The welcome's id is still the resumed position: cut before the messages, the stream gets them again.
    expect(decodeEventId(got[0]!.id)?.get('user:a')).toEqual({ offset: 1, epoch: 'E' });
    expect(decodeEventId(got[1]!.id)?.get('user:a')).toEqual({ offset: 2, epoch: 'E' });
    expect(decodeEventId(got[2]!.id)?.get('user:a')).toEqual({ offset: 3, epoch: 'E' });
    expect(handshakes).toBe(1);
  });

  it('makes subscribe replies `subscribed` or `refused` events of the query channel they answer, and ends after a disconnect', () => {
    const { res, text, ended } = recorder();
    const transport = new SseTransport(res, new Map(), ['news', 'secret:x'], () => undefined);
    transport.send(JSON.stringify({ type: 'reply', id: 1, error: { code: 'forbidden', message: 'no grant' } }));
    transport.send(JSON.stringify({ type: 'reply', id: 0, result: { channel: 'news', offset: 7, epoch: 'N', recovered: false, messages: [] } }));
    transport.keepAlive();
    transport.send(JSON.stringify({ type: 'disconnect', code: 4100, reason: 'node draining', reconnect: true }));
    transport.close();
    transport.send(JSON.stringify({ type: 'ping' }));
    expect(text()).toContain(': ping\n\n');
    const got = events(text());
    expect(got.map((e) => e.event)).toEqual(['refused', 'subscribed', 'disconnect']);
    expect(got[0]!.data).toEqual({ type: 'refused', channel: 'secret:x', error: { code: 'forbidden', message: 'no grant' } });
    expect(got[1]!.data).toEqual({ type: 'subscribed', channel: 'news', offset: 7, epoch: 'N', recovered: false });
    // With no message recovered, the subscription's position is in its own event's id.
    expect(decodeEventId(got[1]!.id)?.get('news')).toEqual({ offset: 7, epoch: 'N' });
    expect(ended()).toBe(true);
  });
});
