/**
 * The server SDK's webhook helpers: the signature is HMAC-SHA256 of the
 * raw body as docs/backend.md says, checked against tampering, another secret and
 * a malformed header, and the body is read into typed events or refused.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseWebhook, verifyWebhook, webhookSignature, WebhookError, type WebhookEvent } from '../../src/server-sdk/index.js';

const SECRET = 'unit-webhook-secret';
const EVENTS: WebhookEvent[] = [
  { id: '1-1700000000000-0', type: 'online', ts: 1_700_000_000_000, node: 'n1', user: 'alice', session: 's1' },
  { id: '1-1700000000500-0', type: 'offline', ts: 1_700_000_000_500, node: 'n2', user: 'alice' },
];
const BODY = JSON.stringify({ events: EVENTS });

describe('webhook signatures', () => {
  it('are sha256= and the hex HMAC-SHA256 of the raw body under the secret', () => {
    expect(webhookSignature(SECRET, BODY)).toBe(`sha256=${createHmac('sha256', SECRET).update(BODY).digest('hex')}`);
    expect(webhookSignature(SECRET, Buffer.from(BODY))).toBe(webhookSignature(SECRET, BODY));
  });

  it('verify the body they sign, and nothing else', () => {
    const header = webhookSignature(SECRET, BODY);
    expect(verifyWebhook(BODY, header, SECRET)).toBe(true);
    expect(verifyWebhook(Buffer.from(BODY), header, SECRET)).toBe(true);
    expect(verifyWebhook(`${BODY} `, header, SECRET)).toBe(false);
    expect(verifyWebhook(BODY, header, 'another-secret')).toBe(false);
    expect(verifyWebhook(BODY, header.toUpperCase(), SECRET)).toBe(false);
    expect(verifyWebhook(BODY, header.slice(0, -1), SECRET)).toBe(false);
    expect(verifyWebhook(BODY, header.replace('sha256=', ''), SECRET)).toBe(false);
    expect(verifyWebhook(BODY, undefined, SECRET)).toBe(false);
    expect(verifyWebhook(BODY, [header, header], SECRET)).toBe(false);
  });
});

describe('parseWebhook', () => {
  it('returns the typed events of a signed body', () => {
    expect(parseWebhook(BODY, webhookSignature(SECRET, BODY), SECRET)).toEqual(EVENTS);
  });

  it('returns join and leave events with their channel, typed', () => {
    const events: WebhookEvent[] = [
      { id: '2-1700000000000-0', type: 'join', ts: 1_700_000_000_000, node: 'n1', user: 'bob', session: 's1', channel: 'room:1' },
      { id: '2-1700000000100-0', type: 'leave', ts: 1_700_000_000_100, node: 'n1', user: 'bob', session: 's1', channel: 'room:1' },
    ];
    const body = JSON.stringify({ events });
    const parsed = parseWebhook(body, webhookSignature(SECRET, body), SECRET);
    expect(parsed).toEqual(events);
    expect(parsed.map((e) => (e.type === 'join' || e.type === 'leave' ? e.channel : undefined))).toEqual(['room:1', 'room:1']);
    const bad = JSON.stringify({ events: [{ ...events[0], channel: 1 }] });
    expect(() => parseWebhook(bad, webhookSignature(SECRET, bad), SECRET)).toThrow(expect.objectContaining({ reason: 'body' }));
  });

  it('refuses a bad signature before reading the body', () => {
    const err = (() => {
      try {
        parseWebhook('not json', 'sha256=00', SECRET);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(WebhookError);
    expect(err).toMatchObject({ reason: 'signature' });
  });

  it.each([
    ['not JSON', 'nope'],
    ['no events', '{}'],
    ['events not a list', '{"events": {}}'],
    ['an event without its id', JSON.stringify({ events: [{ ...EVENTS[0], id: undefined }] })],
    ['a ts that is not a number', JSON.stringify({ events: [{ ...EVENTS[0], ts: '1' }] })],
    ['a session that is not a string', JSON.stringify({ events: [{ ...EVENTS[0], session: 1 }] })],
    ['null', 'null'],
  ])('refuses a signed body with %s', (_what, body) => {
    expect(() => parseWebhook(body, webhookSignature(SECRET, body), SECRET)).toThrow(expect.objectContaining({ reason: 'body' }));
  });
});
