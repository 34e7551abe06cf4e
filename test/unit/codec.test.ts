import { describe, expect, it } from 'vitest';
import {
  MAX_CHANNEL_LENGTH,
  PERSONAL_NAMESPACE,
  isValidChannel,
  isValidUserId,
  matchesPattern,
  namespaceOf,
  personalChannel,
  personalChannelUser,
} from '../../src/protocol/channel.js';
import { MAX_JSON_DEPTH, decodeClientFrame, encodeMessage, encodeServerFrame, type DecodeResult } from '../../src/protocol/codec.js';
import { CloseCode, ErrorCode, SwitchboardError, httpStatusOf, isTerminalClose } from '../../src/protocol/errors.js';

const decode = (v: unknown): DecodeResult => decodeClientFrame(typeof v === 'string' ? v : JSON.stringify(v));

/** Asserts a rejection with code bad_request, a message matching `msg`, and exactly the given id (or none). */
function expectReject(result: DecodeResult, msg: RegExp, id?: number): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.error.code).toBe('bad_request');
  expect(result.error.message).toMatch(msg);
  if (id === undefined) expect('id' in result).toBe(false);
  else expect(result.id).toBe(id);
}

function expectFrame(result: DecodeResult, frame: unknown): void {
  expect(result).toEqual({ ok: true, frame });
}

const nested = (depth: number): unknown => {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
};

describe('decodeClientFrame: JSON and shape', () => {
  it('rejects invalid JSON without an id', () => {
    expectReject(decodeClientFrame('{"type":"ping","id":1'), /not valid JSON/);
    expectReject(decodeClientFrame(''), /not valid JSON/);
    expectReject(decodeClientFrame("{'type':'ping'}"), /not valid JSON/);
  });

  it.each([
    ['array', '[{"type":"ping","id":1}]'],
    ['number', '42'],
    ['null', 'null'],
    ['string', '"ping"'],
    ['boolean', 'true'],
  ])('rejects non-object JSON (%s)', (_name, text) => {
    expectReject(decodeClientFrame(text), /must be a JSON object/);
  });

  it('rejects a frame without type, carrying a usable id', () => {
    expectReject(decode({ id: 3 }), /no string "type"/, 3);
    expectReject(decode({}), /no string "type"/);
  });

  it('rejects a non-string type', () => {
    expectReject(decode({ type: 1, id: 4 }), /no string "type"/, 4);
    expectReject(decode({ type: null, id: 0 }), /no string "type"/, 0);
    expectReject(decode({ type: ['ping'] }), /no string "type"/);
    expectReject(decode({ type: { x: 1 }, id: -1 }), /no string "type"/);
  });

  it('rejects an unknown type with the id only when the id is a non-negative safe integer', () => {
    expectReject(decode({ type: 'hello', id: 9 }), /unknown frame type "hello"/, 9);
    expectReject(decode({ type: 'hello', id: 0 }), /unknown frame type/, 0);
    expectReject(decode({ type: 'hello' }), /unknown frame type "hello"/);
    expectReject(decode({ type: 'hello', id: -1 }), /unknown frame type/);
    expectReject(decode({ type: 'hello', id: 1.5 }), /unknown frame type/);
    expectReject(decode({ type: 'hello', id: '9' }), /unknown frame type/);
    expectReject(decode({ type: 'hello', id: Number.MAX_SAFE_INTEGER + 1 }), /unknown frame type/);
    expectReject(decode({ type: 'hello', id: Number.MAX_SAFE_INTEGER }), /unknown frame type/, Number.MAX_SAFE_INTEGER);
    // type names are case-sensitive
    expectReject(decode({ type: 'PING', id: 1 }), /unknown frame type "PING"/, 1);
  });

  it('truncates a long unknown type in the message', () => {
    const r = decode({ type: 'x'.repeat(1000), id: 1 });
    expectReject(r, /unknown frame type/, 1);
    if (!r.ok) expect(r.error.message.length).toBeLessThan(100);
  });

  it('accepts 31 levels of nesting inside data and rejects 40', () => {
    expectFrame(decode({ type: 'publish', id: 1, channel: 'a', data: nested(31) }), {
      type: 'publish',
      id: 1,
      channel: 'a',
      data: nested(31),
    });
    expectReject(decode({ type: 'publish', channel: 'a', data: nested(40) }), /deeper than 32/);
  });

  it('puts the limit at exactly MAX_JSON_DEPTH levels, counting the frame object', () => {
    expect(MAX_JSON_DEPTH).toBe(32);
    // frame object (1) + data array of depth 31 = 32 levels: accepted
    expect(decode({ type: 'publish', id: 1, channel: 'a', data: nested(MAX_JSON_DEPTH - 1) }).ok).toBe(true);
    // 33 levels: rejected
    expect(decode({ type: 'publish', id: 1, channel: 'a', data: nested(MAX_JSON_DEPTH) }).ok).toBe(false);
    // depth through objects counts too
    let obj: unknown = {};
    for (let i = 1; i < 40; i++) obj = { k: obj };
    expectReject(decode({ type: 'publish', channel: 'a', data: obj }), /deeper than/);
  });

  it('a too-deep frame with a usable id gets the error as a reply to that id (SPEC: frames with id get exactly one reply)', () => {
    // The top-level id is perfectly readable; without it the client's pending request never resolves.
    expectReject(decode({ type: 'publish', id: 7, channel: 'a', data: nested(40) }), /deeper than 32/, 7);
  });

  it('rejects a deep frame without blowing the stack', () => {
    const text = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(decodeClientFrame(`{"type":"publish","channel":"a","data":${text}}`).ok).toBe(false);
  });
});

describe('decodeClientFrame: ids', () => {
  const needsId = [
    { type: 'subscribe', channel: 'a' },
    { type: 'unsubscribe', channel: 'a' },
    { type: 'publish', channel: 'a', data: 1 },
    { type: 'send', user: 'u', data: 1 },
    { type: 'ping' },
  ];
  for (const base of needsId) {
    it(`${base.type} needs a non-negative integer id`, () => {
      const msg = new RegExp(`"${base.type}" needs an "id"`);
      expectReject(decode(base), msg);
      expectReject(decode({ ...base, id: -1 }), msg);
      expectReject(decode({ ...base, id: 1.5 }), msg);
      expectReject(decode({ ...base, id: '1' }), msg);
      expectReject(decode({ ...base, id: null }), msg);
      expectReject(decode({ ...base, id: Number.MAX_SAFE_INTEGER + 1 }), msg);
      expect(decode({ ...base, id: 0 }).ok).toBe(true);
      expect(decode({ ...base, id: 12 }).ok).toBe(true);
    });
  }

  it('ack and pong need no id', () => {
    expectFrame(decode({ type: 'pong' }), { type: 'pong' });
    expectFrame(decode({ type: 'pong', id: 5 }), { type: 'pong' });
    expectFrame(decode({ type: 'ack', channel: 'chat:a', offset: 3 }), { type: 'ack', channel: 'chat:a', offset: 3 });
    expectFrame(decode({ type: 'ack', channel: 'chat:a', offset: 0 }), { type: 'ack', channel: 'chat:a', offset: 0 });
  });

  it('ping decodes to exactly {type, id}', () => {
    expectFrame(decode({ type: 'ping', id: 7, extra: true }), { type: 'ping', id: 7 });
  });
});

describe('decodeClientFrame: channels', () => {
  for (const type of ['subscribe', 'unsubscribe', 'publish'] as const) {
    it(`${type} rejects a missing or non-string channel, with the id`, () => {
      const base = type === 'publish' ? { type, id: 2, data: 1 } : { type, id: 2 };
      expectReject(decode(base), new RegExp(`${type} needs a string "channel"`), 2);
      expectReject(decode({ ...base, channel: 5 }), /needs a string "channel"/, 2);
      expectReject(decode({ ...base, channel: null }), /needs a string "channel"/, 2);
      expectReject(decode({ ...base, channel: ['a'] }), /needs a string "channel"/, 2);
    });

    it(`${type} rejects bad channel names, with the id`, () => {
      const base = type === 'publish' ? { type, id: 3, data: 1 } : { type, id: 3 };
      const bad = ['', 'a'.repeat(256), 'a b', 'a/b', 'café', 'chat:*', '*', 'a\nb', 'a#b', 'ünï', '😀'];
      for (const channel of bad) {
        expectReject(decode({ ...base, channel }), /channel name must be 1-255 characters/, 3);
      }
    });

    it(`${type} accepts edge-valid names`, () => {
      const base = type === 'publish' ? { type, id: 3, data: 1 } : { type, id: 3 };
      for (const channel of ['a'.repeat(255), 'A-Za-z0-9_-.:@=,', 'x', ':', 'user:alice', 'a:b:c']) {
        const r = decode({ ...base, channel });
        expect(r.ok, channel).toBe(true);
        if (r.ok && 'channel' in r.frame) expect(r.frame.channel).toBe(channel);
      }
    });
  }

  it('subscribe without since decodes to {type, id, channel} only', () => {
    expectFrame(decode({ type: 'subscribe', id: 1, channel: 'chat:x', foo: 1 }), { type: 'subscribe', id: 1, channel: 'chat:x' });
  });

  it('unsubscribe decodes to {type, id, channel}', () => {
    expectFrame(decode({ type: 'unsubscribe', id: 4, channel: 'chat:x' }), { type: 'unsubscribe', id: 4, channel: 'chat:x' });
  });
});

describe('decodeClientFrame: since', () => {
  const sub = (since: unknown) => decode({ type: 'subscribe', id: 8, channel: 'news', since });

  it('accepts a well-formed since', () => {
    expectFrame(sub({ offset: 10, epoch: 'abc' }), {
      type: 'subscribe',
      id: 8,
      channel: 'news',
      since: { offset: 10, epoch: 'abc' },
    });
    expectFrame(sub({ offset: 0, epoch: '' }), { type: 'subscribe', id: 8, channel: 'news', since: { offset: 0, epoch: '' } });
    expectFrame(sub({ offset: 1, epoch: 'e'.repeat(64) }), {
      type: 'subscribe',
      id: 8,
      channel: 'news',
      since: { offset: 1, epoch: 'e'.repeat(64) },
    });
  });

  it('drops unknown fields of since', () => {
    const r = sub({ offset: 1, epoch: 'e', junk: true });
    expect(r.ok && r.frame.type === 'subscribe' && r.frame.since).toEqual({ offset: 1, epoch: 'e' });
  });

  it.each([
    ['missing epoch', { offset: 1 }],
    ['missing offset', { epoch: 'e' }],
    ['negative offset', { offset: -1, epoch: 'e' }],
    ['float offset', { offset: 1.5, epoch: 'e' }],
    ['string offset', { offset: '1', epoch: 'e' }],
    ['unsafe offset', { offset: 2 ** 53, epoch: 'e' }],
    ['numeric epoch', { offset: 1, epoch: 5 }],
    ['null epoch', { offset: 1, epoch: null }],
    ['epoch over 64 chars', { offset: 1, epoch: 'e'.repeat(65) }],
    ['null since', null],
    ['array since', [1, 'e']],
    ['string since', '1:e'],
  ])('rejects since with %s, with the id', (_name, since) => {
    expectReject(sub(since), /"since" must be/, 8);
  });
});

describe('decodeClientFrame: publish and send', () => {
  it('publish needs data; null data is accepted and kept', () => {
    expectReject(decode({ type: 'publish', id: 1, channel: 'a' }), /publish needs "data"/, 1);
    expectFrame(decode({ type: 'publish', id: 1, channel: 'a', data: null }), { type: 'publish', id: 1, channel: 'a', data: null });
    expectFrame(decode({ type: 'publish', id: 1, channel: 'a', data: { x: [1, 'y'] } }), {
      type: 'publish',
      id: 1,
      channel: 'a',
      data: { x: [1, 'y'] },
    });
    expectFrame(decode({ type: 'publish', id: 1, channel: 'a', data: 0 }), { type: 'publish', id: 1, channel: 'a', data: 0 });
  });

  it('send needs data; null data is accepted', () => {
    expectReject(decode({ type: 'send', id: 2, user: 'bob' }), /send needs "data"/, 2);
    expectFrame(decode({ type: 'send', id: 2, user: 'bob', data: null }), { type: 'send', id: 2, user: 'bob', data: null });
    expectFrame(decode({ type: 'send', id: 2, user: 'bob', data: 'hi' }), { type: 'send', id: 2, user: 'bob', data: 'hi' });
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['number', 5],
    ['with a space', 'bo b'],
    ['with a slash', 'a/b'],
    ['with a star', 'a*'],
    ['unicode', 'bób'],
    ['251 chars', 'u'.repeat(251)],
  ])('send rejects a user that is %s, with the id', (_name, user) => {
    expectReject(decode({ type: 'send', id: 6, user, data: 1 }), /send needs a valid "user"/, 6);
  });

  it('send accepts a 250-char user id', () => {
    expect(decode({ type: 'send', id: 6, user: 'u'.repeat(250), data: 1 }).ok).toBe(true);
  });
});

describe('decodeClientFrame: ack', () => {
  it('rejects ack without a valid channel', () => {
    expectReject(decode({ type: 'ack', offset: 1 }), /ack needs a valid "channel"/);
    expectReject(decode({ type: 'ack', channel: 'a b', offset: 1 }), /ack needs a valid "channel"/);
    expectReject(decode({ type: 'ack', channel: 7, offset: 1 }), /ack needs a valid "channel"/);
  });

  it.each([
    ['missing', undefined],
    ['negative', -1],
    ['float', 2.5],
    ['string', '3'],
    ['null', null],
  ])('rejects ack with an offset that is %s', (_name, offset) => {
    expectReject(decode({ type: 'ack', channel: 'a', offset }), /ack needs a non-negative integer "offset"/);
  });
});

describe('channel names', () => {
  it('constants', () => {
    expect(MAX_CHANNEL_LENGTH).toBe(255);
    expect(PERSONAL_NAMESPACE).toBe('user');
  });

  it('isValidChannel', () => {
    expect(isValidChannel('a'.repeat(255))).toBe(true);
    expect(isValidChannel('a'.repeat(256))).toBe(false);
    expect(isValidChannel('')).toBe(false);
    expect(isValidChannel('_-.:@=,')).toBe(true);
    expect(isValidChannel('a*')).toBe(false);
    expect(isValidChannel(undefined)).toBe(false);
    expect(isValidChannel(5)).toBe(false);
    expect(isValidChannel('abc\n')).toBe(false);
  });

  it('namespaceOf: the part before the first colon', () => {
    expect(namespaceOf('chat:room:1')).toBe('chat');
    expect(namespaceOf('user:alice')).toBe('user');
    expect(namespaceOf('plain')).toBe('');
    expect(namespaceOf(':x')).toBe('');
    expect(namespaceOf('a:')).toBe('a');
  });

  it('personalChannel and personalChannelUser', () => {
    expect(personalChannel('alice')).toBe('user:alice');
    expect(personalChannel('a:b')).toBe('user:a:b');
    expect(personalChannelUser('user:alice')).toBe('alice');
    expect(personalChannelUser('user:a:b')).toBe('a:b');
    expect(personalChannelUser(personalChannel('x.y@z'))).toBe('x.y@z');
    expect(personalChannelUser('chat:alice')).toBeUndefined();
    expect(personalChannelUser('users:alice')).toBeUndefined();
    expect(personalChannelUser('user')).toBeUndefined();
    expect(personalChannelUser('xuser:alice')).toBeUndefined();
    expect(personalChannelUser('User:alice')).toBeUndefined();
  });

  it('a personal channel of the longest valid user id is a valid channel', () => {
    const user = 'u'.repeat(250);
    expect(isValidUserId(user)).toBe(true);
    expect(isValidChannel(personalChannel(user))).toBe(true);
    expect(personalChannel(user)).toHaveLength(255);
  });

  it('isValidUserId', () => {
    expect(isValidUserId('alice')).toBe(true);
    expect(isValidUserId('A-Za-z0-9_-.:@=,')).toBe(true);
    expect(isValidUserId('bob@example.com')).toBe(true);
    expect(isValidUserId('')).toBe(false);
    expect(isValidUserId('u'.repeat(251))).toBe(false);
    expect(isValidUserId('a b')).toBe(false);
    expect(isValidUserId('a/b')).toBe(false);
    expect(isValidUserId('a*')).toBe(false);
    expect(isValidUserId('é')).toBe(false);
    expect(isValidUserId(42)).toBe(false);
    expect(isValidUserId(null)).toBe(false);
    expect(isValidUserId(undefined)).toBe(false);
  });
});

describe('matchesPattern', () => {
  it('exact patterns match only themselves', () => {
    expect(matchesPattern('chat:a', 'chat:a')).toBe(true);
    expect(matchesPattern('chat:a', 'chat:ab')).toBe(false);
    expect(matchesPattern('chat:a', 'chat:')).toBe(false);
    expect(matchesPattern('chat:a', 'xchat:a')).toBe(false);
  });

  it('* alone matches everything', () => {
    expect(matchesPattern('*', 'anything')).toBe(true);
    expect(matchesPattern('*', 'user:bob')).toBe(true);
    expect(matchesPattern('*', 'x')).toBe(true);
  });

  it('prefix patterns', () => {
    expect(matchesPattern('chat:*', 'chat:room')).toBe(true);
    expect(matchesPattern('chat:*', 'chat:')).toBe(true);
    expect(matchesPattern('chat:*', 'chat:a:b')).toBe(true);
    expect(matchesPattern('chat:*', 'chat')).toBe(false);
    expect(matchesPattern('chat:*', 'chatx:room')).toBe(false);
    expect(matchesPattern('chat:*', 'xchat:room')).toBe(false);
  });

  it('suffix patterns', () => {
    expect(matchesPattern('*:admin', 'team:admin')).toBe(true);
    expect(matchesPattern('*:admin', ':admin')).toBe(true);
    expect(matchesPattern('*:admin', 'team:admins')).toBe(false);
    expect(matchesPattern('*:admin', 'admin')).toBe(false);
    expect(matchesPattern('*:admin', 'team-admin')).toBe(false);
  });

  it('middle patterns', () => {
    expect(matchesPattern('a*b*c', 'abc')).toBe(true);
    expect(matchesPattern('a*b*c', 'aXXbYYc')).toBe(true);
    expect(matchesPattern('a*b*c', 'abbc')).toBe(true);
    expect(matchesPattern('a*b*c', 'acb')).toBe(false);
    expect(matchesPattern('a*b*c', 'ab')).toBe(false);
    expect(matchesPattern('a*b*c', 'abcd')).toBe(false);
    expect(matchesPattern('a*b*c', 'xabc')).toBe(false);
    expect(matchesPattern('org:*:team:*', 'org:1:team:2')).toBe(true);
    expect(matchesPattern('org:*:team:*', 'org:1:crew:2')).toBe(false);
  });

  it('has no false positives where prefix and suffix overlap', () => {
    expect(matchesPattern('a*b', 'ab-x')).toBe(false);
    expect(matchesPattern('a*b', 'ab')).toBe(true);
    expect(matchesPattern('a*b', 'axb')).toBe(true);
    expect(matchesPattern('ab*ba', 'aba')).toBe(false);
    expect(matchesPattern('ab*ba', 'abba')).toBe(true);
    expect(matchesPattern('a*a', 'a')).toBe(false);
    expect(matchesPattern('a*bc*c', 'abc')).toBe(false);
    expect(matchesPattern('a*b*b', 'ab')).toBe(false);
  });
});

describe('encoding', () => {
  it('encodeMessage produces a message frame with the publication fields', () => {
    const text = encodeMessage({ channel: 'chat:a', data: { n: 1 }, offset: 4, epoch: 'ep', from: 'bob' });
    expect(JSON.parse(text)).toEqual({ type: 'message', channel: 'chat:a', data: { n: 1 }, offset: 4, epoch: 'ep', from: 'bob' });
    expect(text.startsWith('{"type":"message"')).toBe(true);
  });

  it('encodeMessage omits absent offset/epoch/from and keeps null data', () => {
    expect(JSON.parse(encodeMessage({ channel: 'x', data: null }))).toEqual({ type: 'message', channel: 'x', data: null });
  });

  it('encodeServerFrame is JSON of the frame', () => {
    const frame = { type: 'reply' as const, id: 3, error: { code: ErrorCode.Forbidden, message: 'no' } };
    expect(JSON.parse(encodeServerFrame(frame))).toEqual(frame);
  });
});

describe('errors', () => {
  it('isTerminalClose boundaries', () => {
    expect(isTerminalClose(3999)).toBe(false);
    expect(isTerminalClose(4000)).toBe(true);
    expect(isTerminalClose(4001)).toBe(true);
    expect(isTerminalClose(4008)).toBe(true);
    expect(isTerminalClose(4099)).toBe(true);
    expect(isTerminalClose(4100)).toBe(false);
    expect(isTerminalClose(4129)).toBe(false);
    expect(isTerminalClose(1000)).toBe(false);
    expect(isTerminalClose(1009)).toBe(false);
  });

  it('close codes match the SPEC', () => {
    expect(CloseCode).toMatchObject({
      TooLarge: 1009,
      Unauthorized: 4001,
      Forbidden: 4003,
      PolicyViolation: 4008,
      Draining: 4100,
      SlowConsumer: 4101,
      Moved: 4102,
      HeartbeatTimeout: 4103,
      RateLimited: 4129,
    });
    for (const c of [CloseCode.Unauthorized, CloseCode.Forbidden, CloseCode.PolicyViolation]) expect(isTerminalClose(c)).toBe(true);
    for (const c of [CloseCode.Draining, CloseCode.SlowConsumer, CloseCode.Moved, CloseCode.HeartbeatTimeout, CloseCode.RateLimited]) {
      expect(isTerminalClose(c)).toBe(false);
    }
  });

  it('httpStatusOf covers every error code', () => {
    expect(httpStatusOf).toEqual({
      bad_request: 400,
      unauthorized: 401,
      forbidden: 403,
      not_found: 404,
      too_large: 413,
      rate_limited: 429,
      unavailable: 503,
      internal: 500,
    });
    expect(Object.keys(httpStatusOf).sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('SwitchboardError carries its code and serialises to {code, message}', () => {
    const err = new SwitchboardError(ErrorCode.RateLimited, 'slow down');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('SwitchboardError');
    expect(err.code).toBe('rate_limited');
    expect(err.message).toBe('slow down');
    expect(err.toBody()).toEqual({ code: 'rate_limited', message: 'slow down' });
    expect(Object.keys(err.toBody()).sort()).toEqual(['code', 'message']);
  });
});
