/**
 * The settings of the `limits` section (`--max-*`): what one node,
 * connection, user or IP may use. Every one is a whole number; each is hit
 * by a test. Part of `SETTINGS` (settings.ts), kept apart because they are
 * many.
 */
import type { SettingSpec } from './settings.js';

const MAX = Number.MAX_SAFE_INTEGER;

export const LIMIT_SETTINGS = {
  maxFrameBytes: { flag: 'max-frame-bytes', section: 'limits', kind: 'integer', min: 1, max: MAX, help: 'largest client frame (bytes)' },
  maxConnections: { flag: 'max-connections', section: 'limits', kind: 'integer', min: 1, max: MAX, help: 'open connections per node' },
  maxConnectionsPerIpPerSecond: {
    flag: 'max-connections-per-ip-per-second',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'new connections per client IP per second (0: no limit)',
  },
  maxHandshakesPerSecond: {
    flag: 'max-handshakes-per-second',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'new sessions this node admits per second (0: no limit)',
  },
  maxHandshakesInFlight: {
    flag: 'max-handshakes-in-flight',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'handshakes under way at once, until welcome (0: no limit)',
  },
  maxMessagesPerSecond: {
    flag: 'max-messages-per-second',
    section: 'limits',
    kind: 'integer',
    min: 1,
    max: MAX,
    help: 'frames per connection per second (subscribe and unsubscribe aside)',
  },
  maxSubscriptions: { flag: 'max-subscriptions', section: 'limits', kind: 'integer', min: 1, max: MAX, help: 'channels per connection' },
  maxSubscribesPerSecond: {
    flag: 'max-subscribes-per-second',
    section: 'limits',
    kind: 'integer',
    min: 1,
    max: MAX,
    help: 'subscribes per connection per second, after a burst of --max-subscriptions (each pays for an unsubscribe)',
  },
  maxBufferedBytes: {
    flag: 'max-buffered-bytes',
    section: 'limits',
    kind: 'integer',
    min: 1,
    max: MAX,
    help: 'bytes queued for a slow client before closing it (4101)',
  },
  maxBodyBytes: { flag: 'max-body-bytes', section: 'limits', kind: 'integer', min: 1, max: MAX, help: 'largest server API request body (bytes)' },
  maxPublishBytesPerMinute: {
    flag: 'max-publish-bytes-per-minute',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'bytes a connection may publish and send per minute (0: no limit)',
  },
  maxUserPublishBytesPerMinute: {
    flag: 'max-user-publish-bytes-per-minute',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'bytes the connections of one user on this node may publish and send per minute (0: no limit)',
  },
  maxNewChannelsPerMinute: {
    flag: 'max-new-channels-per-minute',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'channels a connection may newly write to per minute (0: no limit)',
  },
  maxUserNewChannelsPerMinute: {
    flag: 'max-user-new-channels-per-minute',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'channels the connections of one user on this node may newly write to per minute (0: no limit)',
  },
  maxReplayBytesPerSecond: {
    flag: 'max-replay-bytes-per-second',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'history bytes replayed to a connection per second, 16 s worth at once (0: no limit)',
  },
  maxConnectionsPerIp: {
    flag: 'max-connections-per-ip',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'open connections per client IP on this node (0: no limit)',
  },
  maxConnectionsPerUser: {
    flag: 'max-connections-per-user',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'open connections per user on this node (0: no limit)',
  },
  maxSubscriptionsPerNode: {
    flag: 'max-subscriptions-per-node',
    section: 'limits',
    kind: 'integer',
    min: 0,
    max: MAX,
    help: 'subscriptions held by the sessions of this node, personal channels aside (0: no limit)',
  },
} as const satisfies Record<string, SettingSpec>;
