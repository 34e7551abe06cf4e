/**
 * Receiving Switchboard's webhook in a business service: check the
 * signature of the raw body, then read the events. The node signs with
 * `webhookSignature`, so the two cannot drift apart.
 *
 * ```ts
 * const events = parseWebhook(rawBody, req.headers['x-switchboard-signature'], secret);
 * ```
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { WEBHOOK_SIGNATURE_HEADER, type WebhookBody, type WebhookEvent } from '../protocol/index.js';

export { WEBHOOK_SIGNATURE_HEADER };
export type { WebhookBody, WebhookEvent, WebhookEventType } from '../protocol/index.js';

/** Why a webhook request was not accepted: a bad signature or a body that is not a webhook body. */
export class WebhookError extends Error {
  constructor(
    readonly reason: 'signature' | 'body',
    message: string,
  ) {
    super(message);
    this.name = 'WebhookError';
  }
}

/** The header value for `body` signed under `secret`: `sha256=<hex>` of HMAC-SHA256. */
export function webhookSignature(secret: string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Whether `header` (the `X-Switchboard-Signature` value; an array or
 * undefined as Node's `req.headers` gives it) signs `body` under `secret`.
 * Compares in constant time. Pass the raw body, before any JSON parsing.
 */
export function verifyWebhook(body: string | Uint8Array, header: string | string[] | undefined, secret: string): boolean {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(webhookSignature(secret, body));
  const given = Buffer.from(header.trim());
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The events of a webhook request, after checking its signature; throws
 * `WebhookError` when the signature does not match or the body is not
 * `{events: [...]}` of well-formed events. Answer 2xx once they are safely
 * handled: anything else makes the node send them again.
 */
export function parseWebhook(body: string | Uint8Array, header: string | string[] | undefined, secret: string): WebhookEvent[] {
  const events = (verifiedJson(body, header, secret) as Partial<WebhookBody> | null)?.events;
  if (!Array.isArray(events) || !events.every(isEvent)) throw new WebhookError('body', 'the body is not {events: [...]} of events');
  return events;
}

/**
 * `body` parsed as JSON once its signature checks: a `WebhookError` for a
 * bad signature or a body that is not JSON. The first step of reading the
 * webhook and every hook request.
 */
export function verifiedJson(body: string | Uint8Array, header: string | string[] | undefined, secret: string): unknown {
  if (!verifyWebhook(body, header, secret)) throw new WebhookError('signature', `bad or missing ${WEBHOOK_SIGNATURE_HEADER}`);
  try {
    return JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch {
    throw new WebhookError('body', 'the body is not JSON');
  }
}

function isEvent(v: unknown): v is WebhookEvent {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.id === 'string' &&
    typeof e.type === 'string' &&
    typeof e.ts === 'number' &&
    typeof e.node === 'string' &&
    typeof e.user === 'string' &&
    (e.session === undefined || typeof e.session === 'string') &&
    (e.channel === undefined || typeof e.channel === 'string')
  );
}
