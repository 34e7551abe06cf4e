/**
 * The `rpc` hook (SPEC "Backend hooks and events"): a client's `rpc` frame
 * becomes a POST of `{user, session, method, data}` to `--rpc-hook`, and the
 * backend's `{data}` the reply.
 */
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { HookClient } from './client.js';

export class RpcHook {
  constructor(
    private readonly client: HookClient,
    /** Without one, every rpc is answered `not_found`. */
    private readonly url: string | undefined,
  ) {}

  /** The backend's answer to `method` called by `session` of `user`; a `SwitchboardError` when it refused or failed. */
  async call(user: string, session: string, method: string, data: unknown): Promise<unknown> {
    if (this.url === undefined) throw new SwitchboardError(ErrorCode.NotFound, 'no rpc hook configured');
    const answer = await this.client.call('rpc', this.url, { user, session, method, data });
    if (!('data' in answer)) throw new SwitchboardError(ErrorCode.Unavailable, 'the rpc hook answered without "data"');
    return answer.data;
  }
}
