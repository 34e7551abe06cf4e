/**
 * The `subscribe` hook (SPEC "Backend hooks and events"): a client's
 * subscribe to a channel of a namespace with `subscribeHook` becomes a POST
 * of `{user, session, channel}` to `--subscribe-hook`; a 2xx answer allows
 * it, anything else refuses it.
 *
 * The call runs beside the connection's frame queue, so that a slow backend
 * holds up only this subscription: the connection's other frames go on.
 * What must stay in order is kept per channel: the subscription changes of
 * one connection on one hooked channel run one after another
 * (`inTurn`), so a subscribe followed by an unsubscribe ends unsubscribed.
 */
import type { Session } from '../core/session.js';
import type { NamespaceOptions } from '../options.js';
import type { HookClient } from './client.js';

export class SubscribeHook {
  /** Per connection, the last change waiting on the hook per channel; none while no change waits. */
  private readonly turns = new WeakMap<Session, Map<string, Promise<void>>>();
  /** Per connection, subscribes allowed by the node's checks and not made or refused yet: they count against the limit. */
  private readonly reserved = new WeakMap<Session, number>();

  constructor(
    private readonly client: Pick<HookClient, 'call'>,
    private readonly url: string,
    /** The options of a channel's namespace. */
    private readonly policyOf: (channel: string) => Pick<NamespaceOptions, 'subscribeHook'>,
  ) {}

  /** Whether a client's subscribe to `channel` asks the backend. */
  asks(channel: string): boolean {
    return this.policyOf(channel).subscribeHook === true;
  }

  /** Resolves when the backend allows `session` of `user` to subscribe to `channel`; a `SwitchboardError` when it refused or failed. */
  async allow(user: string, session: string, channel: string): Promise<void> {
    await this.client.call('subscribe', this.url, { user, session, channel });
  }

  /** Whether a change of `session` on `channel` waits on the hook now (a later change there must wait its turn). */
  waiting(session: Session, channel: string): boolean {
    return this.turns.get(session)?.has(channel) === true;
  }

  /** Subscribes of `session` that passed the node's checks and wait on the hook or their turn in the queue. */
  pending(session: Session): number {
    return this.reserved.get(session) ?? 0;
  }

  /**
   * Run `change` (a subscribe or unsubscribe of `session` on `channel`)
   * after the earlier ones there that wait on the hook, whatever their
   * outcome; at once when none does.
   */
  inTurn(session: Session, channel: string, change: () => Promise<void>): Promise<void> {
    let turns = this.turns.get(session);
    if (!turns) this.turns.set(session, (turns = new Map()));
    const before = turns.get(channel);
    const result = before ? before.then(change) : change();
    const tail: Promise<void> = result.then(
      () => this.forget(session, channel, tail),
      () => this.forget(session, channel, tail),
    );
    turns.set(channel, tail);
    return result;
  }

  /** Count a subscribe of `session` as pending until the returned function is called (once or more). */
  reserve(session: Session): () => void {
    this.reserved.set(session, this.pending(session) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.pending(session) - 1;
      if (left > 0) this.reserved.set(session, left);
      else this.reserved.delete(session);
    };
  }

  private forget(session: Session, channel: string, tail: Promise<void>): void {
    const turns = this.turns.get(session);
    if (turns?.get(channel) !== tail) return;
    turns.delete(channel);
    if (turns.size === 0) this.turns.delete(session);
  }
}
