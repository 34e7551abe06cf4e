/**
 * The JetStream streams of each history policy (size, TTL), created on
 * first use by whichever node needs them first (creating a stream that
 * exists with the same configuration is a no-op, so nodes racing are fine):
 *
 * - the history stream `<p>_h_<size>_<ttlMs>`, subjects
 *   `<p>.h.<size>.<ttlMs>.>`: at most `size` messages per channel subject,
 *   each dropped by the server `ttlMs` after it was stored. It republishes
 *   every message it stores, in stream order and with its headers, from
 *   `<p>.h.<size>.<ttlMs>.<tok>` to the core subject `<p>.r.<tok>`: that is
 *   how publications with history reach the nodes, only once stored and in
 *   offset order.
 * - the position mirror `<p>_p_<size>_<ttlMs>`: a mirror of the history
 *   stream that keeps only the last message of each subject, for 24 hours
 *   (or the TTL if longer). It remembers a channel's offset and epoch after
 *   the TTL emptied its subject in the history stream, so the numbering
 *   goes on (see `history.ts`).
 *
 * Neither allows direct gets: a mirror of a stream that does would answer
 * the history stream's direct gets too (nats-server 2.9 turns
 * `mirror_direct` on by itself), with its one-message view. Reads go to the
 * stream leader, which is also the server that republishes: a node that
 * subscribed and then reads history cannot fall in between.
 */
import type { StreamConfig } from '@nats-io/jetstream';
import type { HistoryPolicy } from '../history.js';
import type { NatsLink } from './link.js';
import { policyKey, type NatsNames } from './names.js';

/**
 * A pause on the global timers. `sleep` from `shared/time.ts` runs on
 * `node:timers/promises`, which vitest's fake timers do not drive, and the
 * unit test of the retries below advances fake time.
 */
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** How long a channel's numbering outlives its last publication (like the Redis broker's META_IDLE_MS). */
export const POSITION_IDLE_MS = 24 * 3600 * 1000;

const NS_PER_MS = 1_000_000;
/** nats-server's default duplicate window. */
const DUPLICATE_WINDOW_MS = 120_000;
/** JetStream: a stream name already used with another configuration. */
const STREAM_NAME_IN_USE = 10058;
export const STREAM_NOT_FOUND = 10059;
/**
 * JetStream: the subjects belong to another stream. nats-server 2.9 may
 * also answer this to a node that creates a stream at the same moment as
 * another node creates the same one (seen once in about 80 runs of the
 * conformance suite here).
 */
const SUBJECTS_OVERLAP = 10065;

export interface PolicyStreams {
  history: string;
  position: string;
}

export class NatsStreams {
  private readonly made = new Map<string, Promise<PolicyStreams>>();

  constructor(
    private readonly link: () => NatsLink,
    private readonly names: NatsNames,
    private readonly replicas: number,
  ) {}

  /** The streams of `policy`, created if needed (once per process, unless `forget` is called). */
  ensure(policy: HistoryPolicy): Promise<PolicyStreams> {
    const name = this.names.historyStream(policy);
    let made = this.made.get(name);
    if (!made) {
      made = this.create(policy);
      this.made.set(name, made);
      // A failure is not cached: the next call tries again.
      made.catch(() => this.made.get(name) === made && this.made.delete(name));
    }
    return made;
  }

  /** The streams of `policy` were found missing (deleted behind our back): create them again next time. */
  forget(policy: HistoryPolicy): void {
    this.made.delete(this.names.historyStream(policy));
  }

  private async create(policy: HistoryPolicy): Promise<PolicyStreams> {
    const { size, ttlMs } = policyKey(policy);
    const history = this.names.historyStream(policy);
    const position = this.names.positionStream(policy);
    const subjects = this.names.historySubject(policy);
    await this.add({
      name: history,
      subjects: [subjects],
      max_msgs_per_subject: size,
      max_age: ttlMs * NS_PER_MS,
      // Message ids guard the numbering (see `history.ts`); the server keeps them no longer than messages.
      duplicate_window: Math.min(ttlMs, DUPLICATE_WINDOW_MS) * NS_PER_MS,
      discard: 'old' as StreamConfig['discard'],
      storage: 'file' as StreamConfig['storage'],
      num_replicas: this.replicas,
      allow_direct: false,
      republish: { src: subjects, dest: this.names.everything },
    });
    await this.add({
      name: position,
      mirror: { name: history },
      max_msgs_per_subject: 1,
      max_age: Math.max(POSITION_IDLE_MS, ttlMs) * NS_PER_MS,
      discard: 'old' as StreamConfig['discard'],
      storage: 'file' as StreamConfig['storage'],
      num_replicas: this.replicas,
      allow_direct: false,
    });
    return { history, position };
  }

  /**
   * Creates a stream unless it exists (the policies' streams, and the
   * presence bucket's: see `presence.ts`). Nodes creating the same stream at
   * the same moment is fine, but nats-server 2.9 may then answer one of
   * them "subjects overlap" (tried again for up to 5 s until the stream is
   * seen; the overlap may really be with another stream), and a clustered
   * one may leave one of them unanswered: a create that times out is
   * checked by looking the stream up.
   */
  async add(config: Partial<StreamConfig> & { name: string }): Promise<void> {
    const link = this.link();
    if (await this.exists(config.name)) return;
    const deadline = Date.now() + MIRROR_SOURCE_WAIT_MS;
    for (;;) {
      try {
        await link.admin.streams.add(config);
        return;
      } catch (err) {
        // Made by a node with other settings (replicas): use it as it is.
        if (apiCode(err) === STREAM_NAME_IN_USE) return;
        if (apiCode(err) === SUBJECTS_OVERLAP && Date.now() < deadline) {
          if (await this.exists(config.name)) return;
          await pause(100);
          continue;
        }
        // A mirror's source created a moment ago may not be known yet to every
        // server of a 2.9 cluster (seen under load in CI): try again shortly.
        if (config.mirror && apiCode(err) === STREAM_NOT_FOUND && Date.now() < deadline) {
          await pause(100);
          continue;
        }
        if (!(err instanceof Error && /timeout/i.test(err.message)) || !(await this.exists(config.name))) throw err;
        return;
      }
    }
  }

  private async exists(name: string): Promise<boolean> {
    try {
      await this.link().read('stream info', (jsm) => jsm.streams.info(name));
      return true;
    } catch (err) {
      if (apiCode(err) === STREAM_NOT_FOUND) return false;
      throw err;
    }
  }
}

/** How long a mirror waits for its source stream to be known cluster-wide. */
const MIRROR_SOURCE_WAIT_MS = 5_000;

/** The JetStream API error code of `err`, if it has one. */
export function apiCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'number') return code;
  const apiError = (err as { api_error?: { err_code?: unknown } }).api_error;
  return typeof apiError?.err_code === 'number' ? apiError.err_code : undefined;
}
