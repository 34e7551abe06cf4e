/**
 * One worker of `switchboard start --workers N`: a full node with its own
 * node id, listening on the port the primary shares out. With the memory
 * broker its broker is an `IpcBroker` to the primary's bus; any other
 * broker it reaches directly, like a node on its own machine.
 *
 * Node's cluster module ends a worker at once when the primary's channel
 * disconnects (the primary died), so a worker never outlives its primary.
 */
import { IpcBroker } from '../../brokers/ipc/ipc-broker.js';
import { primaryPort } from '../../brokers/ipc/port.js';
import type { NodeDeps, SwitchboardNode } from '../node.js';
import type { NodeOptions, NodeOptionsInput } from '../options.js';
import { asWorkerControl, WORKER_NODE_ID_ENV, type UpMessage } from './control.js';

type StartNode = (options: NodeOptionsInput, deps: NodeDeps) => Promise<SwitchboardNode>;

/** Start this worker's node and tell the primary it is up. */
export async function startWorkerNode(options: NodeOptions, startNode: StartNode): Promise<SwitchboardNode> {
  // The primary names workers `<id>-w<i>` when --node-id was given; otherwise each keeps its own per-process default.
  const nodeId = process.env[WORKER_NODE_ID_ENV] ?? options.nodeId;
  let node: SwitchboardNode | undefined;
  const deps: NodeDeps =
    options.broker === 'memory'
      ? { broker: new IpcBroker(primaryPort(), { onError: (err, where) => node?.log.warn({ err, where }, 'broker fault') }) }
      : {};
  node = await startNode({ ...options, nodeId }, deps);
  const up: UpMessage = { sbworker: 'up', node: node.id, port: node.port };
  // A failed send means the primary is gone, and the cluster module ends this worker for that.
  process.send?.(up, undefined, undefined, () => undefined);
  return node;
}

/** Drain when the primary says so (it got SIGTERM or SIGINT). */
export function serveWorker(drain: (why: string) => void): void {
  process.on('message', (value: unknown) => {
    if (asWorkerControl(value)?.sbworker === 'drain') drain('asked by the primary');
  });
}
