// The HTTP side the two peer servers share: `GET /readyz` (200 once
// `ready()`), and `POST /send {user, data}` and `POST /publish {room, data}`,
// each handed to `deliver`, whose answer is sent back as JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A send to a user or a publication to a room, over HTTP or as a frame or event from a socket. */
export interface Command {
  type?: string;
  user?: string;
  room?: string;
  data: unknown;
}

export type Delivery = 'send' | 'publish';

/** The group a command reaches: every socket of the user, or of the room. */
export const target = (kind: Delivery, msg: Command): string => (kind === 'send' ? `user:${msg.user}` : `room:${msg.room}`);

/** The whole body of a request, as text. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** Answers one request: readiness, a send or a publication (400 for a body that is not JSON), 404 for anything else. */
export function answer(req: IncomingMessage, res: ServerResponse, ready: () => boolean, deliver: (kind: Delivery, msg: Command) => unknown): void {
  if (req.method === 'GET' && req.url === '/readyz') {
    res.statusCode = ready() ? 200 : 503;
    return void res.end();
  }
  if (req.method !== 'POST' || (req.url !== '/send' && req.url !== '/publish')) {
    res.statusCode = 404;
    return void res.end();
  }
  const kind: Delivery = req.url === '/send' ? 'send' : 'publish';
  readBody(req)
    .then((body) => JSON.stringify(deliver(kind, JSON.parse(body) as Command)))
    .then(
      (text) => {
        res.setHeader('content-type', 'application/json');
        res.end(text);
      },
      () => {
        res.statusCode = 400;
        res.end();
      },
    );
}
