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
// sticky sessions needed: websocket transport only). `local`: the in-memory
// adapter without recovery (one server, the default set-up).
//
// With a `hooks` backend URL (bench/hooks.ts), the server does what a
// Socket.IO application does to ask its backend, the same requests as
// Switchboard's hooks: a middleware (`io.use`) posts the handshake's
// cookie to `<hooks>/connect` and takes the user it answers (401: refused),
// and the `publish` handler posts each publication to `<hooks>/publish`
// and emits it once allowed. Keep-alive connections, like Switchboard's.
//   node --expose-gc --import probe.mjs sio-server.mjs <port> <redis-url|memory|local> [workers] [hooks]
import { Agent, createServer, request } from 'node:http';
import { Redis } from 'ioredis';
import { Server, type ServerOptions } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { clustered } from './cluster-workers.js';
import { answer, type Command, type Delivery, target } from './http-api.js';

const port = Number(process.argv[2]);
const redisUrl = process.argv[3] ?? '';
const workers = Number(process.argv[4] ?? 1);
const hooks = process.argv[5];
/** At most this many requests at the backend at once, as Switchboard's default `--hook-max-in-flight`. */
const hookAgent = new Agent({ keepAlive: true, maxSockets: 1000 });

/** POST `body` as JSON to the backend; the answer's JSON, or an error for a non-2xx answer. */
function ask(path: string, body: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(`${hooks}${path}`, { method: 'POST', agent: hookAgent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      let answer = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (answer += c));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 300) return reject(new Error(`backend answered ${res.statusCode}`));
        try {
          resolve(JSON.parse(answer) as Record<string, unknown>);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}
/** How long a disconnected socket's session and missed packets are kept (memory mode). */
const RECOVERY_WINDOW_MS = 120_000;

clustered(workers, (ready, allReady) => {
  const memory = redisUrl === 'memory';
  const pub = memory || redisUrl === 'local' ? undefined : new Redis(redisUrl);
  const sub = pub?.duplicate();
  const options: Partial<ServerOptions> = { transports: ['websocket'], perMessageDeflate: false, serveClient: false };
  if (pub && sub) options.adapter = createAdapter(pub, sub);
  else if (memory) options.connectionStateRecovery = { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: true };
  const server = createServer();
  const io = new Server(server, options);
  const emit = (kind: Delivery, msg: Command): Record<string, never> => {
    io.to(target(kind, msg)).emit('message', msg.data);
    return {};
  };
  if (hooks) {
    io.use((socket, next) => {
      const { headers, address, query } = socket.handshake;
      ask('/connect', { ip: address, headers: { cookie: headers.cookie, origin: headers.origin, 'user-agent': headers['user-agent'] }, query }).then(
        (answer) => {
          (socket.data as { user?: unknown }).user = answer.user;
          next();
        },
        (err: Error) => next(err),
      );
    });
  }
  io.on('connection', (socket) => {
    const auth = socket.handshake.auth as { user?: string; room?: string };
    const user = hooks ? String((socket.data as { user?: unknown }).user) : (auth.user ?? '');
    if (!socket.recovered) {
      void socket.join(`user:${user}`);
      if (auth.room) void socket.join(`room:${auth.room}`);
    }
    socket.on('send', (msg: Command) => emit('send', msg));
    socket.on('publish', (msg: Command) => {
      if (!hooks) return void emit('publish', msg);
      ask('/publish', { user, session: socket.id, channel: `room:${msg.room}`, data: msg.data }).then(
        () => emit('publish', msg),
        () => undefined,
      );
    });
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
