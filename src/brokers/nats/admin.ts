/**
 * Removing what one deployment (one prefix) stored in NATS: its history
 * streams, position mirrors, presence and ledger buckets. For tests, and for an
 * operator retiring a deployment that shared a NATS with others.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsNames } from './names.js';
import { apiCode, STREAM_NOT_FOUND } from './streams.js';
import { natsConnectOptions, parseNatsUrl } from './url.js';

/** Deletes every stream of `prefix` (default: the URL's); resolves with their names. */
export async function dropNatsPrefix(url: string, prefix?: string): Promise<string[]> {
  const target = parseNatsUrl(url);
  const names = new NatsNames(prefix ?? target.prefix);
  const nc = await connect({ ...natsConnectOptions(target), timeout: 5000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const ours = (name: string): boolean =>
      name.startsWith(`${names.prefix}_h_`) || name.startsWith(`${names.prefix}_p_`) || [names.presenceBucket, names.legacyPresenceBucket, names.ledgerBucket].some((bucket) => name === `KV_${bucket}`);
    const found: string[] = [];
    for await (const name of jsm.streams.names()) if (ours(name)) found.push(name);
    // Mirrors first: a mirror whose source vanished only logs, but there is no need for that.
    found.sort((a, b) => Number(b.startsWith(`${names.prefix}_p_`)) - Number(a.startsWith(`${names.prefix}_p_`)));
    for (const name of found) {
      // A busy 2.9 cluster may leave a request unanswered: ask again, a bounded number of times.
      for (let attempt = 1; ; attempt++) {
        try {
          await jsm.streams.delete(name);
          break;
        } catch (err) {
          if (apiCode(err) === STREAM_NOT_FOUND) break;
          if (attempt >= 3 || !(err instanceof Error && /timeout/i.test(err.message))) throw err;
        }
      }
    }
    return found;
  } finally {
    await nc.close();
  }
}
