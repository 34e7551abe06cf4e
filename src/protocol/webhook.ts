/**
 * What a node POSTs to `--webhook` (docs/backend.md): a
 * JSON body `{events: [...]}`, signed with HMAC-SHA256 of the raw body
 * under `--webhook-secret`, in the header `X-Switchboard-Signature:
 * sha256=<hex>`. The server SDK checks and parses it (`server-sdk/webhook.ts`).
 */

/** The header carrying the body's signature. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-switchboard-signature';

/**
 * The kinds of event: a user's first session in the cluster opened
 * (`online`), its last closed or its node died (`offline`); a session
 * subscribed to a channel of a namespace with `joinLeave` (`join`), or left
 * it: unsubscribed, closed, or its node died (`leave`).
 */
export type WebhookEventType = 'online' | 'offline' | 'join' | 'leave';

export interface WebhookEvent {
  /** Unique and the same on every retry: drop an event whose id you have seen. */
  id: string;
  type: WebhookEventType;
  /** When the transition was logged, ms since the Unix epoch. */
  ts: number;
  /** The node of the session that made the transition (for a node that died, that node). */
  node: string;
  user: string;
  /** The session whose opening or closing made the transition; absent for `offline` when the user's node died. Always set for `join` and `leave`. */
  session?: string;
  /** The channel, for events about one (`join`, `leave`). */
  channel?: string;
}

export interface WebhookBody {
  /** Oldest first; the events of one user are in the order they happened. */
  events: WebhookEvent[];
}
