// Socket.IO 4 with @socket.io/redis-adapter (ioredis), websocket transport
// only, the way its docs say to target users: each socket joins a room named
// after its user (`socket.join(userId)`), and `io.to(room).emit` reaches it
// on whichever server it is, through Redis pub/sub. Users connect with
// `auth: {user, room?}`; `POST /send {user, data}` and `POST /publish
// {room, data}` (the same endpoints as the ws floor), or the events
// `send {user, data}` and `publish {room, data}` from any socket, emit
// `message`.
//
// `memory` instead of a Redis URL: the in-memory adapter (one server) with
// `connectionStateRecovery` on, the only set-up where Socket.IO replays
// missed messages (the Redis adapter does not support it). With `workers` > 1,
// node:cluster workers share the port, each with its own Redis adapter (no
// sticky sessions needed: websocket transport only).
//   node --expose-gc --import probe.mjs sio-server.mjs <port> <redis-url|memory> [workers]
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Server, type ServerOptions } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { clustered } from './cluster-workers.js';
import { answer, type Command, type Delivery, target } from './http-api.js';

const port = Number(process.argv[2]);
const redisUrl = process.argv[3] ?? '';
const workers = Number(process.argv[4] ?? 1);
/** How long a disconnected socket's session and missed packets are kept (memory mode). */
const RECOVERY_WINDOW_MS = 120_000;

clustered(workers, (ready, allReady) => {
  const memory = redisUrl === 'memory';
  const pub = memory ? undefined : new Redis(redisUrl);
  const sub = pub?.duplicate();
  const options: Partial<ServerOptions> = { transports: ['websocket'], perMessageDeflate: false, serveClient: false };
  if (pub && sub) options.adapter = createAdapter(pub, sub);
  else options.connectionStateRecovery = { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: true };
  const server = createServer();
  const io = new Server(server, options);
  const emit = (kind: Delivery, msg: Command): Record<string, never> => {
    io.to(target(kind, msg)).emit('message', msg.data);
    return {};
  };
  io.on('connection', (socket) => {
    const auth = socket.handshake.auth as { user?: string; room?: string };
    if (!socket.recovered) {
      void socket.join(`user:${auth.user ?? ''}`);
      if (auth.room) void socket.join(`room:${auth.room}`);
    }
    socket.on('send', (msg: Command) => emit('send', msg));
    socket.on('publish', (msg: Command) => emit('publish', msg));
  });
  const redisReady = (): boolean => !pub || (pub.status === 'ready' && sub?.status === 'ready');
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/socket.io/')) return; // Socket.IO's own handler answers these.
    answer(req, res, () => redisReady() && allReady(), emit);
  });
  server.listen(port, '127.0.0.1', ready);
  process.on('SIGTERM', () => {
    void io.close();
    pub?.disconnect();
    sub?.disconnect();
    process.exit(0);
  });
});
