// What a storm window used: CPU of the survivors, the client processes,
// this process and Redis, what the rest of the machine used meanwhile
// ("other load": on a shared 2-core machine it is what makes figures
// noisy), and the kernel's count of connections dropped because a listen
// queue was full (machine-wide; during a storm, the survivors').
import { readFileSync } from 'node:fs';
import { cpuMs, machineBusyMs, ownCpuMs as benchCpuMs } from '../lib/procs.js';
import { redisCpuMs } from '../lib/redis.js';
import type { ClientProcess } from './clients.js';

export interface CpuSnapshot {
  at: number;
  machine: number;
  survivors: number;
  clients: number;
  bench: number;
  redis: number;
  listenOverflows: number;
}

/** TcpExt ListenOverflows of /proc/net/netstat: connections dropped because an accept queue was full. */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.split(' ');
    if (names[0] !== 'TcpExt:') continue;
    const values = lines[i + 1]!.split(' ');
    return Number(values[names.indexOf('ListenOverflows')] ?? NaN);
  }
  return NaN;
}

export async function snapshot(survivorPids: Array<number | undefined>, clients: ClientProcess[], redisPort: number): Promise<CpuSnapshot> {
  const [clientMs, redis] = await Promise.all([
    Promise.all(clients.map((c) => c.ask({ type: 'cpu' }, 10_000))),
    redisCpuMs(redisPort),
  ]);
  return {
    at: Date.now(),
    machine: machineBusyMs(),
    survivors: survivorPids.reduce<number>((t, pid) => t + cpuMs(pid), 0),
    clients: clientMs.reduce((t, c) => t + c.ms, 0),
    bench: benchCpuMs(),
    redis,
    listenOverflows: listenOverflows(),
  };
}

/** CPU used between two snapshots, ms, and the machine's other load in cores. */
export interface Usage {
  survivorsMs: number;
  clientsMs: number;
  benchMs: number;
  redisMs: number;
  otherCores: number;
  listenOverflows: number;
}

export function used(a: CpuSnapshot, b: CpuSnapshot): Usage {
  const d = (f: (s: CpuSnapshot) => number): number => f(b) - f(a);
  const ours = d((s) => s.survivors) + d((s) => s.clients) + d((s) => s.bench) + d((s) => s.redis);
  const windowMs = Math.max(1, b.at - a.at);
  return {
    survivorsMs: d((s) => s.survivors),
    clientsMs: d((s) => s.clients),
    benchMs: d((s) => s.bench),
    redisMs: d((s) => s.redis),
    otherCores: Math.max(0, d((s) => s.machine) - ours) / windowMs,
    listenOverflows: d((s) => s.listenOverflows),
  };
}
