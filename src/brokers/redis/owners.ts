/**
 * Which node holds which entries, so that a node's presence and registry
 * entries go together when it dies or leaves, without a scan and without a
 * timer: each node's entries are listed in an index of its own
 * (`RedisKeys.presenceOf`, `registeredBy`, under the node's hash tag),
 * written before the entry, and the set `RedisKeys.nodes` names the nodes
 * holding any. An idle node costs Redis nothing.
 */
import type { Store } from '../broker.js';
import type { RedisKeys } from './keys.js';
import type { CommandClient } from './lua.js';

/** Index members asked for per SSCAN step while dropping a node: bounds one reply and the deletions after it. */
const SCAN_COUNT = 1000;
/** SSCAN steps of one index at most (far more than any node's entries need): the walk is bounded. */
const MAX_STEPS = 1_000_000;

/** A part of the store whose entries are indexed per node (presence, registry). */
export interface IndexedByNode {
  /** Delete the entries `node`'s index lists, and their index members. */
  dropIndexed(node: string): Promise<void>;
}

/**
 * Walk the index `key` step by step, handing each step's members to
 * `drop`, which deletes their entries and then removes them from the
 * index: a drop that fails halfway leaves the rest indexed, for the next one.
 */
export async function eachIndexed(client: () => CommandClient, key: string, drop: (members: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  for (let step = 0; step < MAX_STEPS; step++) {
    const [next, members] = await client().sscan(key, cursor, 'COUNT', SCAN_COUNT);
    // SSCAN may return a member twice.
    if (members.length > 0) await drop([...new Set(members)]);
    cursor = next;
    if (cursor === '0') return;
  }
  throw new Error(`${key} was not walked in ${MAX_STEPS} steps`);
}

/** `dropNode` and `nodesWithEntries` of the Redis store. */
export class RedisOwners implements Pick<Store, 'dropNode' | 'nodesWithEntries'> {
  constructor(
    private readonly client: () => CommandClient,
    private readonly keys: RedisKeys,
    private readonly parts: IndexedByNode[],
  ) {}

  async dropNode(node: string): Promise<void> {
    await Promise.all(this.parts.map((part) => part.dropIndexed(node)));
    const client = this.client();
    await client.srem(this.keys.nodes, node);
    // A node that wrote meanwhile (it was not dead, or starts again under its id) is listed again:
    // its writes send the index member before naming it in `nodes`, so one of the two is seen here.
    const held = await Promise.all([client.exists(this.keys.presenceOf(node)), client.exists(this.keys.registeredBy(node))]);
    if (held.some((n) => n > 0)) await client.sadd(this.keys.nodes, node);
  }

  async nodesWithEntries(): Promise<string[]> {
    return this.client().smembers(this.keys.nodes);
  }
}
