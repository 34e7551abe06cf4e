// A client process of the benchmark: holds a `ClientFleet` (SDK clients)
// and answers the parent's commands over IPC. Exits when the parent goes.
import { ClientFleet } from '../../test/helpers/client-fleet.js';
import { ownCpuMs } from '../lib/procs.js';
import { serveWorker } from '../lib/workers.js';
import type { ReplyOf, ToChild } from './protocol.js';

export function runChild(): void {
  let fleet: ClientFleet | undefined;
  serveWorker<ToChild>(async (m): Promise<ReplyOf[ToChild['type']]> => {
    switch (m.type) {
      case 'start':
        fleet = new ClientFleet({ users: m.users, firstUrl: m.firstUrl, reconnectUrls: m.reconnectUrls, backoff: m.backoff, connectRate: m.connectRate });
        await fleet.connectAll(m.timeoutMs);
        return {};
      case 'arm':
        fleet?.arm();
        return {};
      case 'reconnected':
        return { count: fleet?.reconnected() ?? 0 };
      case 'distinct':
        return { counts: fleet?.distinctRounds() ?? [] };
      case 'records':
        return { records: fleet?.records() ?? [], cpuMs: ownCpuMs() };
      case 'cpu':
        return { ms: ownCpuMs() };
      case 'close':
        fleet?.close();
        return {};
    }
  });
}
