/**
 * The `publish` hook (SPEC "Backend hooks and events"): a client's publish
 * to a channel of a namespace with `publishHook` (a `send` to `user:<x>`
 * is a publish to the `user` namespace) becomes a POST of
 * `{user, session, channel, data}` to `--publish-hook`; a 2xx answer
 * publishes, with the answer's `data` in place of the client's when it has
 * one, anything else refuses it and nothing is published.
 */
import { ErrorCode, SwitchboardError } from '../../protocol/index.js';
import type { NamespaceOptions } from '../options.js';
import type { HookClient } from './client.js';

export class PublishHook {
  constructor(
    private readonly client: Pick<HookClient, 'call'>,
    private readonly url: string,
    /** The options of a channel's namespace. */
    private readonly policyOf: (channel: string) => Pick<NamespaceOptions, 'publishHook'>,
    /**
     * Largest data the backend may put in place of the client's, as JSON
     * bytes: `--max-frame-bytes`, the bound of the client's own data, so
     * that no client publish carries more than a client could send.
     */
    private readonly maxDataBytes: number,
  ) {}

  /** Whether a client's publish to `channel` asks the backend. */
  asks(channel: string): boolean {
    return this.policyOf(channel).publishHook === true;
  }

  /**
   * The data to publish for `session` of `user` on `channel`: the client's
   * `data`, or what the backend put in its place. A `SwitchboardError` when
   * the backend refused or failed, or when its data is over `maxDataBytes`
   * (`too_large`).
   */
  async data(user: string, session: string, channel: string, data: unknown): Promise<unknown> {
    const answer = await this.client.call('publish', this.url, { user, session, channel, data });
    if (!('data' in answer)) return data;
    const bytes = Buffer.byteLength(JSON.stringify(answer.data));
    if (bytes > this.maxDataBytes) {
      throw new SwitchboardError(
        ErrorCode.TooLarge,
        `the publish hook answered data of ${bytes} bytes, over the ${this.maxDataBytes} a publish may carry (--max-frame-bytes): nothing was published`,
      );
    }
    return answer.data;
  }
}
