/**
 * The server SDK for business services: `import { SwitchboardApi } from 'switchboard/server-sdk'`.
 * Node 20+ (global fetch); see docs/server-sdk.md.
 */
export { SwitchboardApi } from './api.js';
export { SwitchboardApiError } from './errors.js';
export type { SwitchboardApiOptions } from './options.js';
export type {
  BatchCommand,
  BatchItemReceipt,
  BatchReceipt,
  BroadcastReceipt,
  CallOptions,
  ClusterNode,
  DisconnectOptions,
  ErrorBody,
  HistoryPage,
  HistoryQuery,
  PresenceMember,
  Publication,
  PublishOptions,
  PublishReceipt,
  PublishResult,
  UserRoute,
  UserStatus,
} from './types.js';
export { ErrorCode } from '../protocol/index.js';
export { parseWebhook, verifyWebhook, webhookSignature, WebhookError, WEBHOOK_SIGNATURE_HEADER } from './webhook.js';
export type { WebhookBody, WebhookEvent, WebhookEventType } from './webhook.js';
export { parseConnectRequest, parseRefreshRequest, parseRpcRequest } from './hooks.js';
export type {
  ConnectHookAnswer,
  ConnectHookHeaders,
  ConnectHookRequest,
  RefreshHookAnswer,
  RefreshHookRequest,
  RpcHookAnswer,
  RpcHookRequest,
} from './hooks.js';
