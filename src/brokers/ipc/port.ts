/**
 * The duplex channel between a worker's `IpcBroker` and the primary's
 * `IpcHub`, kept abstract so that the broker and the hub know nothing of
 * `node:cluster`: in production it is the IPC channel Node opens to every
 * cluster worker (`process.send` in the worker, `worker.send` in the
 * primary); tests use `node:worker_threads` message ports.
 */
import type { Envelope } from './wire.js';

export interface IpcPort {
  /** Send one batch. Never throws: a closed channel is reported through `onClose`. */
  send(envelope: Envelope): void;
  /** Every value that arrives (batches and anything else sent on the channel). */
  onMessage(listener: (value: unknown) => void): void;
  /** Called once when the channel is gone for good. */
  onClose(listener: () => void): void;
  /** Stop delivering to the listeners given above (the channel itself stays open). */
  detach(): void;
}

/** The part of an IPC endpoint a port needs: `process` in a worker, a cluster `Worker` or a `ChildProcess` in the parent. */
export interface IpcEndpoint {
  send?(message: Envelope, sendHandle?: undefined, options?: undefined, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

/** A cluster `Worker` wraps its `ChildProcess`: that is where `send` and `disconnect` live. */
export interface ClusterWorkerLike {
  readonly process: IpcEndpoint;
}

/**
 * A port over a Node IPC endpoint. The channel's own serialization (JSON
 * unless the primary asked for `advanced`) encodes each batch. A send on a
 * closed channel is ignored: the `disconnect` event already says so.
 */
export function endpointPort(endpoint: IpcEndpoint, isConnected: () => boolean): IpcPort {
  const listeners: { message?: (value: unknown) => void; disconnect?: () => void } = {};
  let closed = !isConnected();
  const onClose: Array<() => void> = [];
  const disconnect = (): void => {
    if (closed) return;
    closed = true;
    for (const l of onClose) l();
  };
  listeners.disconnect = disconnect;
  endpoint.on('disconnect', disconnect);
  return {
    send(envelope) {
      if (closed || !endpoint.send) return;
      try {
        endpoint.send(envelope, undefined, undefined, () => undefined);
      } catch {
        // The channel closed under us: the `disconnect` event reports it.
      }
    },
    onMessage(listener) {
      listeners.message = listener;
      endpoint.on('message', listener);
    },
    onClose(listener) {
      if (closed) queueMicrotask(listener);
      else onClose.push(listener);
    },
    detach() {
      if (listeners.message) endpoint.off('message', listeners.message);
      endpoint.off('disconnect', disconnect);
      onClose.length = 0;
    },
  };
}

/** The worker's side: its own `process`, whose IPC channel leads to the primary. */
export function primaryPort(proc: NodeJS.Process = process): IpcPort {
  return endpointPort(proc as unknown as IpcEndpoint, () => proc.connected === true);
}

/** The primary's side of one worker's channel. */
export function workerPort(worker: ClusterWorkerLike & { isConnected(): boolean }): IpcPort {
  return endpointPort(worker.process, () => worker.isConnected());
}
