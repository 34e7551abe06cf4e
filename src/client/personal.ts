/**
 * The session's personal channel (`user:<id>`, named by `welcome`): where
 * the app stands in it, kept across reconnects to recover from, and the
 * messages that reach a new socket before its `welcome`.
 */
import type { Publication, StreamPosition } from '../protocol/index.js';
import { StreamCursor } from './cursor.js';

export class PersonalChannel {
  /** The last position delivered: what a reconnect recovers from. */
  readonly cursor = new StreamCursor();
  /** The channel named by the last `welcome`. */
  private name: string | undefined;
  /** The position sent with the current attempt. */
  private sent: StreamPosition | undefined;
  /** Messages that arrived on the open socket before `welcome`. */
  private early: Publication[] = [];

  /** `maxBuffered` caps the messages held until `welcome`. */
  constructor(private readonly maxBuffered: number) {}

  /** The channel's name, once a `welcome` gave it. */
  get channel(): string | undefined {
    return this.name;
  }

  /** The position to send with a new attempt; its `welcome` recovers from it. */
  attempt(): StreamPosition | undefined {
    this.sent = this.cursor.since;
    return this.sent;
  }

  /** Keep a message that came before `welcome`, while there is room. */
  hold(pub: Publication): void {
    if (this.early.length < this.maxBuffered) this.early.push(pub);
  }

  /** The socket went down: what was held for its `welcome` is dropped. */
  drop(): void {
    this.early = [];
  }

  /**
   * A `welcome` names the channel; returns the position its attempt
   * recovers from. A different channel (another user's token) makes the old
   * position meaningless: it is forgotten and nothing is recovered.
   */
  welcome(channel: string): StreamPosition | undefined {
    const sameUser = this.name === undefined || this.name === channel;
    if (!sameUser) this.cursor.reset();
    this.name = channel;
    return sameUser ? this.sent : undefined;
  }

  /** The held messages of the channel, once; only personal messages can precede the `welcome`. */
  takeHeld(): Publication[] {
    const name = this.name;
    const held = this.early.filter((pub) => pub.channel === name);
    this.early = [];
    return held;
  }
}
