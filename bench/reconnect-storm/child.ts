// A client process of the benchmark: holds a `ClientFleet` (SDK clients)
// and answers the parent's requests over IPC. Exits when the parent goes.
import { ClientFleet } from '../../test/helpers/client-fleet.js';
import type { FromChild, ToChild } from './protocol.js';

function ownCpuMs(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

export function runChild(): void {
  let fleet: ClientFleet | undefined;
  const reply = (m: FromChild): void => void process.send?.(m);
  const handle = async (m: ToChild): Promise<void> => {
    switch (m.type) {
      case 'start':
        fleet = new ClientFleet({ users: m.users, firstUrl: m.firstUrl, reconnectUrls: m.reconnectUrls, backoff: m.backoff, connectRate: m.connectRate });
        await fleet.connectAll(m.timeoutMs);
        return reply({ type: 'started' });
      case 'arm':
        fleet?.arm();
        return reply({ type: 'armed' });
      case 'reconnected':
        return reply({ type: 'reconnected', count: fleet?.reconnected() ?? 0 });
      case 'distinct':
        return reply({ type: 'distinct', counts: fleet?.distinctRounds() ?? [] });
      case 'records':
        return reply({ type: 'records', records: fleet?.records() ?? [], cpuMs: ownCpuMs() });
      case 'cpu':
        return reply({ type: 'cpu', ms: ownCpuMs() });
      case 'close':
        fleet?.close();
        return reply({ type: 'closed' });
    }
  };
  process.on('message', (m: ToChild) => {
    handle(m).catch((err: unknown) => reply({ type: 'failed', message: err instanceof Error ? err.message : String(err) }));
  });
  process.on('disconnect', () => process.exit(0));
}
