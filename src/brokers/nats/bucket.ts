/**
 * A JetStream KV bucket opened once and shared by every call: created as
 * the KV library would create it (but surviving nodes that create it at
 * once), then bound. A failed open is tried afresh by the next call.
 * Presence and the ledger each keep one.
 */
import type { StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsLink } from './link.js';
import type { NatsStreams } from './streams.js';

export class KvBucket {
  private opening: Promise<KV> | undefined;

  constructor(
    /** The bucket's name (its stream is `KV_<name>`). */
    readonly name: string,
    private readonly link: () => NatsLink,
    private readonly streams: NatsStreams,
    private readonly replicas: number,
    /** The bucket drops whatever was not written for this long (ms); 0 keeps everything until removed. */
    private readonly maxAgeMs: number,
  ) {}

  /** The bound bucket; rejects while NATS is unreachable. */
  kv(): Promise<KV> {
    const link = this.link();
    link.check();
    if (!this.opening) {
      const made = this.open(link);
      this.opening = made;
      made.catch(() => {
        if (this.opening === made) this.opening = undefined;
      });
    }
    return this.opening;
  }

  private async open(link: NatsLink): Promise<KV> {
    await this.streams.add({
      name: `KV_${this.name}`,
      subjects: [`$KV.${this.name}.>`],
      max_msgs_per_subject: 1,
      max_age: this.maxAgeMs * 1_000_000,
      discard: 'new' as StreamConfig['discard'],
      storage: 'file' as StreamConfig['storage'],
      num_replicas: this.replicas,
      allow_rollup_hdrs: true,
      allow_direct: true,
    });
    return new Kvm(link.js).open(this.name, { timeout: link.tuning.requestTimeoutMs });
  }
}
