/**
 * A business backend a test starts on 127.0.0.1 for the nodes' hooks to
 * call: it listens (on a free port, or again on the port it had, after a
 * stop), and stops at once, dropping its keep-alive connections, so that a
 * test can take the backend down and bring it back where the nodes expect it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export class TestBackend {
  private server: http.Server | undefined;
  /** The port it listens on (0 before the first listen). */
  port = 0;

  constructor(private readonly handle: http.RequestListener) {}

  /** Listen on `at` (0: a free port; default: the port it had); answers the port. */
  async listen(at = this.port): Promise<number> {
    const server = http.createServer(this.handle);
    this.server = server;
    await new Promise<void>((resolve) => server.listen(at, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** Stop listening and close every connection, idle or not. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
