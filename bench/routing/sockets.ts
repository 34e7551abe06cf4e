// Loopback TCP sockets from /proc: which process listens on a port, and the
// local ports of one process's connections to a port. Enough to tell this
// run's connections to a shared server (RabbitMQ) from everybody else's.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

interface TcpSocket {
  localPort: number;
  remotePort: number;
  listening: boolean;
  inode: string;
}

/** Every TCP socket of this network namespace, IPv4 and IPv6. */
function tcpSockets(): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (addr: string): number => parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);
      out.push({ localPort: port(f[1]!), remotePort: port(f[2]!), listening: f[3] === '0A', inode: f[9]! });
    }
  }
  return out;
}

/** Inodes of the sockets process `pid` holds open (empty if it is gone or not ours to read). */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The process listening on TCP `port`, found by the socket's inode among every process's descriptors. */
export function listenerPid(port: number): number | undefined {
  const wanted = new Set(tcpSockets().filter((s) => s.listening && s.localPort === port).map((s) => s.inode));
  if (wanted.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    for (const inode of socketInodes(pid)) if (wanted.has(inode)) return pid;
  }
  return undefined;
}

/** Local ports of the connections that processes `pids` hold to `remotePort`. */
export function clientPorts(pids: number[], remotePort: number): Set<number> {
  const mine = new Set<string>();
  for (const pid of pids) for (const inode of socketInodes(pid)) mine.add(inode);
  const ports = new Set<number>();
  for (const s of tcpSockets()) if (!s.listening && s.remotePort === remotePort && mine.has(s.inode)) ports.add(s.localPort);
  return ports;
}
