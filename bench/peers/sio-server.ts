// Socket.IO 4 with @socket.io/redis-adapter (ioredis), websocket transport
// only, the way its docs say to target users: each socket joins a room named
// after its user (`socket.join(userId)`), and `io.to(room).emit` reaches it
// on whichever server it is, through Redis pub/sub. Users connect with
// `auth: {user, room?}`; `POST /send {user, data}` and `POST /publish
// {room, data}` (the same endpoints as the ws floor) emit `message`.
//   node --expose-gc --import probe.mjs sio-server.mjs <port> <redis-url>
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { readBody } from './http-body.js';

const port = Number(process.argv[2]);
const redisUrl = process.argv[3] ?? '';
const pub = new Redis(redisUrl);
const sub = pub.duplicate();

const server = createServer();
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false, adapter: createAdapter(pub, sub) });
io.on('connection', (socket) => {
  const auth = socket.handshake.auth as { user?: string; room?: string };
  void socket.join(`user:${auth.user ?? ''}`);
  if (auth.room) void socket.join(`room:${auth.room}`);
});

server.on('request', (req, res) => {
  if (req.url?.startsWith('/socket.io/')) return; // Socket.IO's own handler answers these.
  if (req.method === 'GET' && req.url === '/readyz') {
    res.statusCode = pub.status === 'ready' && sub.status === 'ready' ? 200 : 503;
    return void res.end();
  }
  if (req.method !== 'POST' || (req.url !== '/send' && req.url !== '/publish')) {
    res.statusCode = 404;
    return void res.end();
  }
  readBody(req).then(
    (body) => {
      const msg = JSON.parse(body) as { user?: string; room?: string; data: unknown };
      io.to(req.url === '/send' ? `user:${msg.user}` : `room:${msg.room}`).emit('message', msg.data);
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    },
    () => {
      res.statusCode = 400;
      res.end();
    },
  );
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  void io.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
});
