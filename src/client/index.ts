/**
 * The Switchboard client SDK, for browsers and Node. Imports nothing from
 * Node: in Node < 22 pass the `ws` package's class as the `WebSocket` option.
 */
export { SwitchboardClient } from './client.js';
export { MAX_REDIRECTS } from './reconnect.js';
export { routeResolver, type RouteResolverInit } from './route.js';
export { Subscription } from './subscription.js';
export { ClientError, LocalErrorCode, ServerCloseError, type ClientErrorCode } from './errors.js';
export type { ClientOptions, TokenPlacement } from './options.js';
export type {
  ClientErrorEvent,
  ClientEvents,
  ClientState,
  ConnectedEvent,
  DisconnectedEvent,
  MemberEvent,
  ResetEvent,
  StateChange,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
  UnsubscribedEvent,
} from './events.js';
export type { Listener } from './emitter.js';
export type { WebSocketConstructor, WebSocketLike } from './transport.js';
export { backoffCeiling, backoffDelay, type RandomSource } from '../shared/backoff.js';
export { StreamCursor } from './cursor.js';
export {
  CloseCode,
  ErrorCode,
  SUBPROTOCOL,
  isTerminalClose,
  type Publication,
  type PublishResult,
  type StreamPosition,
} from '../protocol/index.js';
export { MSGPACK_SUBPROTOCOL, type WireCodec } from '../protocol/msgpack.js';
