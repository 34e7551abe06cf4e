/** The typed events of `SwitchboardClient` and `Subscription`. */
import type { Publication } from '../protocol/index.js';
import type { WireCodec } from '../protocol/msgpack.js';
import type { ClientError } from './errors.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected';
export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface StateChange<S> {
  previous: S;
  state: S;
}

/** Emitted on every `welcome`. */
export interface ConnectedEvent {
  session: string;
  node: string;
  user: string;
  /** The personal channel, `user:<user>`. */
  channel: string;
  /** Heartbeat interval, seconds. */
  ping: number;
  /** A recovery position of the personal channel was sent. */
  wasRecovering: boolean;
  /** …and everything missed was returned (delivered right after this event). */
  recovered: boolean;
  /**
   * The codec this connection uses: `msgpack` when the client asked for it
   * (`codec: 'msgpack'`) and the server agreed, else `json`.
   */
  codec: WireCodec;
}

/** Emitted whenever a connection or connection attempt ends. */
export interface DisconnectedEvent {
  /** The close code (the server's `disconnect` frame's, the socket's, or the client's own). */
  code: number;
  reason: string;
  /** Whether the client will reconnect by itself. */
  reconnect: boolean;
  /**
   * Set when the client follows a redirect (close 4102 with the owner node's
   * URL): the WebSocket URL it reconnects to, at once.
   */
  url?: string;
}

/** Recovery of a channel failed: messages were lost, reload the state this channel feeds. */
export interface ResetEvent {
  channel: string;
  /** The channel's position now; new messages continue from here. */
  offset?: number;
  epoch?: string;
}

export interface SubscribedEvent {
  channel: string;
  /** A recovery position was sent (this is a re-subscription). */
  wasRecovering: boolean;
  /** …and everything missed was returned (delivered right after this event). */
  recovered: boolean;
  offset?: number;
  epoch?: string;
}

export interface UnsubscribedEvent {
  channel: string;
  /** Why: `'unsubscribe'` (the app asked) or the error code the server refused the subscription with. */
  reason: string;
}

/** A session subscribed to (`join`) or left (`leave`) a channel of a namespace with `joinLeave`. */
export interface MemberEvent {
  channel: string;
  user: string;
  session: string;
}

export interface ClientErrorEvent {
  error: ClientError;
  /** The channel concerned, when there is one. */
  channel?: string;
}

export interface ClientEvents {
  state: StateChange<ClientState>;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  /** Every delivered message, of any channel (the personal one included), de-duplicated and in order. */
  message: Publication;
  /** Messages of the personal channel only. */
  personal: Publication;
  /** Recovery failed for some channel (the personal one or a subscription). */
  reset: ResetEvent;
  error: ClientErrorEvent;
}

export interface SubscriptionEvents {
  state: StateChange<SubscriptionState>;
  subscribed: SubscribedEvent;
  unsubscribed: UnsubscribedEvent;
  message: Publication;
  /** Another session subscribed (namespaces with `joinLeave`; this one's own join is not reported). */
  join: MemberEvent;
  /** Another session unsubscribed or closed (namespaces with `joinLeave`). */
  leave: MemberEvent;
  reset: ResetEvent;
  error: ClientErrorEvent;
}
