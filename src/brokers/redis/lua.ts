/**
 * How the broker runs its Lua scripts (`scripts.ts`): by SHA, falling back
 * to the full source, over the commands a `Redis` and a `Cluster` both have.
 */
import { createHash } from 'node:crypto';

/** The commands the broker sends on its command connection: `Redis` and `Cluster` both have them. */
export interface CommandClient {
  evalsha(...args: [sha1: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
  eval(...args: [script: string, numkeys: number, ...args: Array<string | number>]): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  spublish(channel: string, message: string): Promise<unknown>;
  get(key: string): Promise<string | null>;
  hset(...args: [key: string, ...fieldValues: string[]]): Promise<unknown>;
  hdel(...args: [key: string, ...fields: string[]]): Promise<unknown>;
  hvals(key: string): Promise<string[]>;
  hmget(...args: [key: string, ...fields: string[]]): Promise<Array<string | null>>;
  sadd(...args: [key: string, ...members: string[]]): Promise<unknown>;
  srem(...args: [key: string, ...members: string[]]): Promise<unknown>;
  smembers(key: string): Promise<string[]>;
  sscan(key: string, cursor: string, countToken: 'COUNT', count: number): Promise<[cursor: string, elements: string[]]>;
  exists(...args: [key: string]): Promise<number>;
}

/**
 * A script sent by SHA, and in full when the server does not have it yet
 * (after a restart or failover). The calls of one pipelined write that all
 * hear NOSCRIPT send the source once: the first sends it in full, which
 * loads it, and the others go by SHA again right behind it on the same
 * connection, in the order they were made (a caller's publications keep
 * their order; nothing sent later overtakes them).
 */
export class LuaScript {
  readonly sha: string;
  /** The run in full that loads the script, while it is under way. */
  private loading: Promise<unknown> | undefined;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: CommandClient, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!noScript(err)) throw err;
    }
    if (this.loading) {
      // Sent after the source: the script is there when this runs (unless it goes to another server of a cluster).
      try {
        return await client.evalsha(this.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!noScript(err)) throw err;
      }
    }
    const full = client.eval(this.source, keys.length, ...keys, ...args);
    this.loading = full;
    const done = (): void => {
      if (this.loading === full) this.loading = undefined;
    };
    full.then(done, done);
    return full;
  }
}

function noScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}
