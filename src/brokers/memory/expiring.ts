/**
 * Per-channel entries that expire unless set again: idempotency keys and
 * acknowledged positions. Reads drop what has expired; `sweep` drops it for
 * channels nobody reads.
 */

export class ExpiringIndex<T> {
  private readonly byChannel = new Map<string, Map<string, { value: T; expiresAt: number }>>();

  /** Set (or refresh) the entry `id` of `channel`. */
  set(channel: string, id: string, value: T, expiresAt: number): void {
    let m = this.byChannel.get(channel);
    if (!m) this.byChannel.set(channel, (m = new Map()));
    m.set(id, { value, expiresAt });
  }

  /** The unexpired entry `id` of `channel`, if any. */
  get(channel: string, id: string, now: number): T | undefined {
    const e = this.byChannel.get(channel)?.get(id);
    if (!e) return undefined;
    if (e.expiresAt > now) return e.value;
    this.delete(channel, id);
    return undefined;
  }

  delete(channel: string, id: string): void {
    const m = this.byChannel.get(channel);
    if (m?.delete(id) && m.size === 0) this.byChannel.delete(channel);
  }

  /** The unexpired entries of `channel`, dropping the expired ones. */
  live(channel: string, now: number): T[] {
    const m = this.byChannel.get(channel);
    if (!m) return [];
    const live: T[] = [];
    for (const [id, { value, expiresAt }] of m) {
      if (expiresAt > now) live.push(value);
      else m.delete(id);
    }
    if (m.size === 0) this.byChannel.delete(channel);
    return live;
  }

  /** Drop every expired entry. */
  sweep(now: number): void {
    for (const channel of [...this.byChannel.keys()]) this.live(channel, now);
  }
}
