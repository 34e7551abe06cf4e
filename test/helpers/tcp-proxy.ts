/**
 * A TCP proxy on a free loopback port, for outage tests against a server
 * other tests share: `cut()` drops every connection through it and refuses
 * new ones (accepted, then closed at once), `restore()` lets them through
 * again. The server behind it never notices anything but closed clients.
 * With `delayMs`, every chunk waits that long in each direction (in order):
 * a round trip through it takes twice that, which makes round trips count.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** Connections open through the proxy now. */
  readonly open: number;
  /** Destroy every connection and refuse new ones until `restore`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1', delayMs = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server: Server = createServer((client) => {
    track(client);
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    track(upstream);
    if (delayMs > 0) {
      // A relayed chunk goes out at once, as the ends' own sockets send (no Nagle wait for an ACK on top of the delay).
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      const relay = (from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
      };
      relay(client, upstream);
      relay(upstream, client);
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    get open() {
      return sockets.size;
    },
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      refusing = false;
    },
    close() {
      refusing = true;
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
