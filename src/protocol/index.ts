/** The Switchboard wire protocol: frames, codec, errors, channel rules. No runtime dependencies. */
export * from './channel.js';
export * from './codec.js';
export * from './errors.js';
export * from './frames.js';
