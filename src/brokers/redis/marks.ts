/**
 * Markers that prove a subscription, so that a subscriber's history read
 * can go out in the round trip of the node's SUBSCRIBE instead of after it.
 *
 * The subscription travels on the subscriber connection, the read on the
 * command connection, and Redis does not order two connections: a read run
 * before the SUBSCRIBE took effect would miss what is published in between.
 * So the command connection first publishes a marker on the channel, then
 * sends the read. Redis runs one connection's commands in order: when the
 * marker comes back through this node's subscription, the subscription was
 * in place before the read ran, and whatever the read did not see arrives
 * through it. When it does not come back (Redis ran the read first), the
 * caller reads again once the subscription is confirmed.
 *
 * A marker is `{"m":"<token>"}`, the token unique to this broker: the other
 * nodes subscribed to the channel receive it too and pass it over.
 */
import { randomUUID } from 'node:crypto';

const PREFIX = '{"m":"';

/** One marker on its way. */
export interface Mark {
  /** Whether it came back through the subscription. */
  readonly came: boolean;
  /** Settles when it comes back (never, if it does not). */
  readonly arrived: Promise<void>;
  /** Stop waiting for it. */
  end(): void;
}

interface Waiting {
  came: boolean;
  arrive(): void;
}

export class SubscriptionMarks {
  /** Unique to this broker, so that a node never takes another's marker for its own. */
  private readonly origin = randomUUID();
  private next = 0;
  /** Tokens sent and not ended. */
  private readonly waiting = new Map<string, Waiting>();

  /** @param publish sends `payload` on pub/sub channel `name` from the command connection */
  constructor(private readonly publish: (name: string, payload: string) => Promise<unknown>) {}

  /** Publish a marker on pub/sub channel `name` now, ahead of the commands sent after it on the command connection. */
  send(name: string): Mark {
    const token = `${this.origin}.${++this.next}`;
    let arrive = (): void => undefined;
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    const waiting: Waiting = { came: false, arrive };
    this.waiting.set(token, waiting);
    // A marker that fails to go out never comes back: the caller reads again.
    this.publish(name, `${PREFIX}${token}"}`).catch(() => undefined);
    return {
      get came() {
        return waiting.came;
      },
      arrived,
      end: () => void this.waiting.delete(token),
    };
  }

  /** Whether `message` is a marker (this node's or another's); when it is one of ours, it came back. */
  take(message: string): boolean {
    if (!message.startsWith(PREFIX)) return false;
    const waiting = this.waiting.get(message.slice(PREFIX.length, -2));
    if (waiting) {
      waiting.came = true;
      waiting.arrive();
    }
    return true;
  }
}
