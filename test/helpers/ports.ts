/**
 * Free TCP ports on the loopback interface for test servers. A port found
 * free can still be taken by someone else before the server binds it, so
 * callers that spawn a server retry with a new port when the bind fails.
 */
import { createServer } from 'node:net';

/** A port the OS just handed out on 127.0.0.1 (listen on port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** A free port that is not in `taken` (the ports already picked for the same servers), added to it. */
export async function freePortNotIn(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port');
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free port P in 20000–39999 whose P + 10000 is free too: a Redis Cluster
 * node listens on both (the second is its cluster bus). `avoid` holds ports
 * already picked for the same cluster.
 */
export async function freePortPair(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    if (avoid.has(port) || avoid.has(port + 10000) || avoid.has(port - 10000)) continue;
    if ((await isPortFree(port)) && (await isPortFree(port + 10000))) return port;
  }
  throw new Error('no free port pair (P, P+10000) found in 20000–39999');
}

/** A free port P whose next `count - 1` ports are free too, for a command that takes P, P+1, … itself. */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port + count - 1 > 65535) continue;
    let free = true;
    for (let i = 1; i < count && free; i++) free = await isPortFree(port + i);
    if (free) return port;
  }
  throw new Error(`no run of ${count} free ports found`);
}
