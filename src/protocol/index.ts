/** The Switchboard wire protocol: frames, codec, errors, channel rules, the server API's shapes. No runtime dependencies. */
export * from './api.js';
export * from './channel.js';
export * from './codec.js';
export * from './errors.js';
export * from './frames.js';
export * from './webhook.js';
