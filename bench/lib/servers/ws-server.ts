// The floor: bare `ws`, no broker. Users connect to
// `/ws?user=<id>[&room=<name>]`; `POST /send {user, data}` and
// `POST /publish {room, data}`, or the text frames `{"type":"send","user","data"}`
// and `{"type":"publish","room","data"}` from any connection, write
// `{"type":"message","data":…}` to every socket of that user or room, straight
// from in-process maps. With `workers` > 1 (node:cluster, for holding many idle
// connections) each worker has its own maps: sends reach only its sockets.
//   node --expose-gc --import probe.mjs ws-server.mjs <port> [workers]
import { createServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { clustered } from './cluster-workers.js';
import { answer, type Command, target } from './http-api.js';

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? 1);
const groups = new Map<string, Set<WebSocket>>();

function join(key: string, ws: WebSocket): void {
  let set = groups.get(key);
  if (!set) groups.set(key, (set = new Set()));
  set.add(ws);
  ws.once('close', () => {
    set.delete(ws);
    if (set.size === 0) groups.delete(key);
  });
}

function deliver(key: string, data: unknown): number {
  const set = groups.get(key);
  if (!set) return 0;
  const text = JSON.stringify({ type: 'message', data });
  for (const ws of set) ws.send(text);
  return set.size;
}

clustered(workers, (ready, allReady) => {
  const server = createServer((req, res) => answer(req, res, allReady, (kind, msg) => ({ delivered: deliver(target(kind, msg), msg.data) })));
  const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    join(`user:${q.get('user') ?? ''}`, ws);
    const room = q.get('room');
    if (room) join(`room:${room}`, ws);
    ws.on('message', (raw) => {
      try {
        const msg = JSON.parse(String(raw)) as Command;
        if (msg.type === 'send' || msg.type === 'publish') deliver(target(msg.type, msg), msg.data);
      } catch {
        ws.terminate();
      }
    });
    ws.on('error', () => ws.terminate());
  });
  server.listen(port, '127.0.0.1', ready);
  process.on('SIGTERM', () => process.exit(0));
});
