/**
 * The NATS broker's store: history in JetStream streams (`history.ts`),
 * acknowledged positions in the ledger bucket (`ledger.ts`) and presence
 * in its bucket (`presence.ts`). No registry: NATS cannot read one in the
 * same step as storing a message.
 */
import type { StreamPosition } from '../../protocol/index.js';
import type { PresenceEntry, PresenceItem, Store } from '../broker.js';
import type { HistoryPage, HistoryPolicy, HistoryQuery } from '../history.js';
import type { NatsHistory } from './history.js';
import type { NatsLedger } from './ledger.js';
import type { NatsPresence } from './presence.js';

export class NatsStore implements Store {
  constructor(
    private readonly histories: NatsHistory,
    private readonly ledger: NatsLedger,
    private readonly presences: NatsPresence,
  ) {}

  history(channel: string, query: HistoryQuery, policy: HistoryPolicy): Promise<HistoryPage> {
    return this.histories.read(channel, query, policy);
  }

  saveAck(channel: string, reader: string, position: StreamPosition, ttlMs: number): Promise<void> {
    return this.ledger.saveAck(channel, reader, position, ttlMs);
  }

  loadAck(channel: string, reader: string): Promise<StreamPosition | null> {
    return this.ledger.loadAck(channel, reader);
  }

  presenceAdd(items: PresenceItem[], ttlMs: number): Promise<void> {
    return items.length === 0 ? Promise.resolve() : this.presences.add(items, ttlMs);
  }

  presenceRemove(items: Array<{ channel: string; session: string }>): Promise<void> {
    return items.length === 0 ? Promise.resolve() : this.presences.remove(items);
  }

  presence(channel: string): Promise<PresenceEntry[]> {
    return this.presences.list(channel);
  }
}
